"""pipec conditions -> KFP CEL: type-correct literals, Python truthiness, and escaping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipec.backends.common.conditions import ConditionError
from pipec.backends.kubeflow import cel as kfp_expr
from pipec.backends.kubeflow.cel import Channel, string_literal, to_cel
from pipec.ir.model import And, Compare, Const, LoopItem, Not, Or, OutputRef, ParamRef

TYPES = {"i": "int", "f": "float", "b": "bool", "s": "str", "l": "list[int]"}


def resolve(operand: ParamRef | OutputRef | LoopItem) -> Channel:
    assert isinstance(operand, ParamRef)
    return Channel(f"pipelinechannel--{operand.param}", TYPES[operand.param])


def ref(name: str) -> str:
    return f"inputs.parameter_values['pipelinechannel--{name}']"


def cmp(op: str, left: object, right: object) -> Compare:
    def operand(x: object) -> ParamRef | Const:
        return x if isinstance(x, ParamRef) else Const(value=x)  # type: ignore[arg-type]

    return Compare(op=op, left=operand(left), right=operand(right))  # type: ignore[arg-type]


INT, FLT, BOOL, STR, LST = (ParamRef(param=p) for p in "ifbsl")


@pytest.mark.parametrize(
    ("expr", "cel"),
    [
        (cmp(">", INT, 3), f"int({ref('i')}) > 3"),
        (cmp(">", INT, 2.5), f"{ref('i')} > 2.5"),
        (cmp(">=", FLT, 1), f"{ref('f')} >= 1.0"),
        (cmp("==", INT, FLT), f"{ref('i')} == {ref('f')}"),
        (cmp("<", INT, INT), f"int({ref('i')}) < int({ref('i')})"),
        (cmp("==", BOOL, True), f"{ref('b')} == true"),
        (cmp("<", 2, INT), f"2 < int({ref('i')})"),
        (cmp("==", STR, "x"), f'{ref("s")} == "x"'),
        (BOOL, ref("b")),
        (INT, f"int({ref('i')}) != 0"),
        (FLT, f"{ref('f')} != 0.0"),
        (STR, f'{ref("s")} != ""'),
        (Const(value=0), "false"),
        (Not(arg=BOOL), f"!({ref('b')})"),
        (
            And(args=(BOOL, Or(args=(BOOL, Not(arg=BOOL))))),
            f"({ref('b')}) && (({ref('b')}) || (!({ref('b')})))",
        ),
    ],
)
def test_translation(expr: object, cel: str) -> None:
    assert to_cel(expr, resolve) == cel  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "expr",
    [
        cmp("==", STR, 1),
        cmp("==", LST, 1),
        LST,
        cmp("==", INT, None),
        cmp("<", STR, BOOL),
        # A bool against a number never reaches the printer (typecheck T106 rejects it first);
        # should one get here, it is an error, never a guess.
        cmp("==", BOOL, 1),
        cmp(">", BOOL, 0),
    ],
)
def test_comparisons_without_a_faithful_cel_form(expr: object) -> None:
    with pytest.raises(ConditionError):
        to_cel(expr, resolve)  # type: ignore[arg-type]


def test_double_literals_always_read_as_doubles() -> None:
    assert kfp_expr.double_literal(1.0) == "1.0"
    assert kfp_expr.double_literal(1e-05) == "1e-05"
    assert kfp_expr.double_literal(1e16) == "1e+16"
    assert kfp_expr.double_literal(-2.5) == "-2.5"


def _unescape(literal: str) -> str:
    """Decode a CEL double-quoted literal (only the escapes string_literal writes)."""
    assert literal[0] == literal[-1] == '"'
    body = literal[1:-1]
    out = []
    i = 0
    simple = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
    while i < len(body):
        char = body[i]
        assert char != '"', "an unescaped quote would end the literal"
        if char != "\\":
            out.append(char)
            i += 1
            continue
        kind = body[i + 1]
        if kind in simple:
            out.append(simple[kind])
            i += 2
        elif kind == "u":
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        else:
            assert kind == "U"
            out.append(chr(int(body[i + 2 : i + 10], 16)))
            i += 10
    return "".join(out)


@given(st.text(alphabet=st.characters(exclude_categories=("Cs",))))
def test_string_literals_round_trip(text: str) -> None:
    literal = string_literal(text)
    assert _unescape(literal) == text
    assert "\n" not in literal


def test_lone_surrogates_are_refused() -> None:
    with pytest.raises(ConditionError):
        string_literal("\ud800")
