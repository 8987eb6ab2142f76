"""The reference meaning of condition expressions (`pipec.ir.evaluate`): Python truthiness and
Python comparisons on JSON values, errors instead of silent answers."""

from __future__ import annotations

from typing import Any, assert_never

import pytest

from pipec.ir.evaluate import EvaluationError, Reference, holds, value
from pipec.ir.model import And, Compare, Const, Expr, LoopItem, Not, Or, OutputRef, ParamRef

VALUES: dict[str, Any] = {"zero": 0, "one": 1, "half": 0.5, "empty": "", "text": "a", "none": None}


def resolve(ref: Reference) -> Any:
    match ref:
        case ParamRef():
            return VALUES[ref.param]
        case OutputRef():
            return VALUES[ref.step]
        case LoopItem():
            return [1, 2]
        case _:
            assert_never(ref)


def p(name: str) -> ParamRef:
    return ParamRef(param=name)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("zero", False), ("one", True), ("half", True), ("empty", False), ("text", True)],
)
def test_a_bare_operand_is_its_python_truthiness(name: str, expected: bool) -> None:
    assert holds(p(name), resolve) is expected
    assert holds(Not(arg=p(name)), resolve) is not expected


@pytest.mark.parametrize(
    ("constant", "expected"),
    [(None, False), ([], False), ({}, False), ([0], True), ({"a": 0}, True), (0.0, False)],
)
def test_constants_too(constant: Any, expected: bool) -> None:
    assert holds(Const(value=constant), resolve) is expected


def test_comparisons_are_pythons() -> None:
    assert holds(Compare(op="==", left=p("one"), right=Const(value=1.0)), resolve)
    assert holds(Compare(op="<", left=p("half"), right=p("one")), resolve)
    assert holds(Compare(op="!=", left=p("text"), right=Const(value="b")), resolve)
    assert not holds(Compare(op=">=", left=p("zero"), right=p("half")), resolve)
    assert value(Compare(op="==", left=LoopItem(loop="l"), right=Const(value=[1, 2])), resolve)


def test_and_or_combine_truthiness_and_stop_early() -> None:
    bad = Compare(op="<", left=p("text"), right=p("one"))  # str < int: an error when evaluated
    assert not holds(And(args=(p("zero"), bad)), resolve)
    assert holds(Or(args=(p("one"), bad)), resolve)
    assert holds(And(args=(p("one"), p("text"))), resolve)
    assert not holds(Or(args=(p("zero"), p("empty"))), resolve)


@pytest.mark.parametrize(
    "expr",
    [
        Compare(op="<", left=ParamRef(param="text"), right=ParamRef(param="one")),
        Compare(op=">", left=ParamRef(param="none"), right=Const(value=0)),
        And(
            args=(
                ParamRef(param="one"),
                Compare(op="<=", left=Const(value=[1]), right=Const(value={})),
            )
        ),
    ],
)
def test_unorderable_values_are_an_error_not_false(expr: Expr) -> None:
    with pytest.raises(EvaluationError, match="cannot compare"):
        holds(expr, resolve)
