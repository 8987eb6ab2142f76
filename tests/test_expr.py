"""The condition language: parsing, printing, exact round-trips, and syntax error messages."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from ir_strategies import exprs, json_values

from pipec.ir.expr import ExprSyntaxError, format_expr, format_value, parse_expr
from pipec.ir.model import (
    And,
    Compare,
    Const,
    Expr,
    LoopItem,
    Not,
    Or,
    OutputRef,
    ParamRef,
)


def strict(expr: Expr) -> str:
    """A comparison key that, unlike `==`, tells 1 from 1.0 from true and 0.0 from -0.0."""
    return json.dumps(expr.model_dump(mode="json"), sort_keys=True)


def assert_round_trip(expr: Expr) -> None:
    text = format_expr(expr)
    parsed = parse_expr(text)
    assert parsed == expr, text
    assert strict(parsed) == strict(expr), text


P = ParamRef(param="p")
Q = ParamRef(param="q")
R = ParamRef(param="r")


def test_parse_the_documented_example() -> None:
    text = 'steps.evaluate.output > 0.9 and not (params.stage == "dev")'
    assert parse_expr(text) == And(
        args=(
            Compare(
                op=">", left=OutputRef(step="evaluate", output="output"), right=Const(value=0.9)
            ),
            Not(arg=Compare(op="==", left=ParamRef(param="stage"), right=Const(value="dev"))),
        )
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("params.p", P),
        ("loops.loop_1.item", LoopItem(loop="loop_1")),
        ("steps.train.model", OutputRef(step="train", output="model")),
        ("params.p or params.q and params.r", Or(args=(P, And(args=(Q, R))))),
        ("(params.p or params.q) and params.r", And(args=(Or(args=(P, Q)), R))),
        ("not params.p and params.q", And(args=(Not(arg=P), Q))),
        ("not params.p == 1", Not(arg=Compare(op="==", left=P, right=Const(value=1)))),
        ("not not params.p", Not(arg=Not(arg=P))),
        ("params.p and params.q and params.r", And(args=(P, Q, R))),
        ("(params.p and params.q) and params.r", And(args=(And(args=(P, Q)), R))),
        ("params.p and (params.q and params.r)", And(args=(P, And(args=(Q, R))))),
        ("all()", And(args=())),
        ("any(params.p)", Or(args=(P,))),
        ("all(params.p, params.q or params.r)", And(args=(P, Or(args=(Q, R))))),
        ("1 <= 2", Compare(op="<=", left=Const(value=1), right=Const(value=2))),
        ('params."learning rate"', ParamRef(param="learning rate")),
        ('steps.a."b c"', OutputRef(step="a", output="b c")),
        ("params . p", P),
        ("params.and", ParamRef(param="and")),  # keywords are plain names after a dot
        ("steps.not.item", OutputRef(step="not", output="item")),
        ("# leading comment\nparams.p  # trailing comment", P),
    ],
)
def test_parse(text: str, expected: Expr) -> None:
    assert parse_expr(text) == expected


@pytest.mark.parametrize(
    ("expr", "text"),
    [
        (And(args=(Or(args=(P, Q)), R)), "(params.p or params.q) and params.r"),
        (Or(args=(And(args=(P, Q)), R)), "params.p and params.q or params.r"),
        (Or(args=(Or(args=(P, Q)), R)), "(params.p or params.q) or params.r"),
        (And(args=(P, And(args=(Q, R)))), "params.p and (params.q and params.r)"),
        (Not(arg=And(args=(P, Q))), "not (params.p and params.q)"),
        (Not(arg=And(args=(P,))), "not all(params.p)"),
        (And(args=(Not(arg=P), And(args=()))), "not params.p and all()"),
        (Or(args=()), "any()"),
        (Compare(op="!=", left=P, right=Const(value=None)), "params.p != null"),
        (ParamRef(param="x y"), 'params."x y"'),
        (LoopItem(loop="1st"), 'loops."1st".item'),
    ],
)
def test_format(expr: Expr, text: str) -> None:
    assert format_expr(expr) == text
    assert_round_trip(expr)


@pytest.mark.parametrize(
    "value",
    [
        0,
        -0.0,
        0.0,
        1.0,
        1e-300,
        5e-324,
        1.7976931348623157e308,
        1e16,
        -(10**30),
        True,
        False,
        None,
        "",
        'say "hi"\\',
        "line\nbreak\ttab\r\x00\x7f",
        "{{ params.x }} $(rm -rf /) ${{ secrets.token }}",
        "é 日本 😀 e\u0301 \u2028 \u200d \ufeff \U000e0001",
        "\ud800",  # a lone surrogate survives as an escape
        [],
        {},
        [1, [2, [3, {}]], {"": None}],
        {"b": 1, "a": {"z": [True, 1.5]}, "\n": "x"},
    ],
)
def test_literals_round_trip(value: object) -> None:
    expr = Const.model_validate({"value": value})
    assert_round_trip(expr)
    assert "\n" not in format_expr(expr)  # escaped: a literal never spans lines


def test_non_finite_floats() -> None:
    assert format_value(math.inf) == "Infinity"
    assert format_value(-math.inf) == "-Infinity"
    assert format_expr(Const(value=math.nan)) == "NaN"
    assert_round_trip(Const(value=math.inf))
    assert_round_trip(Const(value=-math.inf))
    parsed = parse_expr("NaN")
    assert isinstance(parsed, Const) and isinstance(parsed.value, float)
    assert math.isnan(parsed.value)


def test_objects_print_with_sorted_keys() -> None:
    assert format_value({"b": 1, "a": [1, 2.5, "x"]}) == '{"a": [1, 2.5, "x"], "b": 1}'


def test_printable_unicode_stays_readable() -> None:
    assert format_value("café ☕") == '"café ☕"'
    assert format_value("zero\u200bwidth") == '"zero\\u200bwidth"'


@settings(max_examples=200, deadline=None)
@given(exprs())
def test_round_trip(expr: Expr) -> None:
    assert_round_trip(expr)


@settings(max_examples=200, deadline=None)
@given(json_values())
def test_json_values_round_trip(value: object) -> None:
    assert_round_trip(Const.model_validate({"value": value}))


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("", 1, 1, "unexpected end of input; expected one of: a literal, a reference"),
        ("params.p >", 1, 11, "unexpected end of input; expected one of: a literal, a reference"),
        ("params.p > 1 < 2", 1, 14, "unexpected '<'; expected one of: end of input, 'and'"),
        ("(params.p) == 1", 1, 12, "a comparison takes two plain operands"),
        ("params.p params.q", 1, 10, "expected one of: a comparison operator, end of input"),
        ("stage == 1", 1, 1, "unexpected name 'stage'"),
        ("params.", 1, 8, "unexpected end of input; expected a name"),
        ("loops.l.items", 1, 1, "malformed reference 'loops.l.items': expected loops.LOOP.item"),
        ("loops . l . items", 1, 13, "unexpected name 'items'; expected 'item'"),
        ("steps.s", 1, 1, "malformed reference 'steps.s': expected steps.STEP.OUTPUT"),
        ('steps."s"', 1, 10, "unexpected end of input; expected '.'"),
        ("params.a.b", 1, 1, "malformed reference 'params.a.b': expected params.NAME"),
        ('params.p == "abc', 1, 13, "malformed string"),
        ('params.p == "a\\qb"', 1, 13, "malformed string"),
        ("(params.p", 1, 10, "unexpected end of input; expected ')'"),
        ("params.p and\n  params.q ==\n  ?", 3, 3, "unexpected character '?'"),
        ('{"a": 1, "a": 2}', 1, 10, 'duplicate key "a" in object'),
        ("01", 1, 2, "unexpected number '1'"),
        ("params.p = 1", 1, 10, "unexpected character '='"),
    ],
)
def test_syntax_errors(text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(ExprSyntaxError) as caught:
        parse_expr(text)
    error = caught.value
    assert isinstance(error, ValueError)
    assert (error.line, error.column) == (line, column)
    assert message in error.problem
    assert str(error).startswith(f"line {line}, column {column}: ")


def test_syntax_error_shows_the_line_and_a_caret() -> None:
    with pytest.raises(ExprSyntaxError) as caught:
        parse_expr("params.a and\n    params.b >= or params.c")
    assert str(caught.value) == (
        "line 2, column 17: unexpected 'or'; expected one of: a literal, a reference "
        "(params.NAME, steps.STEP.OUTPUT, loops.LOOP.item)\n"
        "        params.b >= or params.c\n"
        "                    ^"
    )
