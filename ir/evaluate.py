"""What a condition expression means: the reference semantics every target must reproduce.

A test holds when its value is truthy the way Python says (`None`, `False`, `0`, `0.0`, `""`,
`[]` and `{}` are false; everything else is true). `and`, `or` and `not` combine truthiness;
a comparison is Python's on the two JSON values (so `1 == 1.0` holds and `"a" < 1` is an error,
never silently false). The local runner decides conditions with `holds`; the other targets print
the expression in their engine's language (CEL, Python in a DAG file, ...), and their printers are
checked against this module.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, assert_never

from pipec.ir.model import (
    And,
    Compare,
    CompareOp,
    Const,
    Expr,
    LoopItem,
    Not,
    Or,
    OutputRef,
    ParamRef,
)

Reference = ParamRef | OutputRef | LoopItem
Resolve = Callable[[Reference], Any]
"""The value (JSON) of an operand that is not a constant: a parameter, a step output, an item."""

COMPARE: dict[CompareOp, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class EvaluationError(ValueError):
    """The values an expression read cannot be combined the way it says (e.g. `"a" < 1`)."""


def truthy(value: Any) -> bool:
    """Python truthiness of a JSON value."""
    return bool(value)


def compare(op: CompareOp, left: Any, right: Any) -> bool:
    """`left op right` with Python's meaning; EvaluationError when Python refuses to order them."""
    try:
        return bool(COMPARE[op](left, right))
    except TypeError as exc:
        raise EvaluationError(f"cannot compare {left!r} {op} {right!r}: {exc}") from None


def value(expr: Expr, resolve: Resolve) -> Any:
    """The value of an expression: an operand's own value, a bool for everything else."""
    match expr:
        case Const():
            return expr.value
        case ParamRef() | OutputRef() | LoopItem():
            return resolve(expr)
        case Compare():
            return compare(expr.op, value(expr.left, resolve), value(expr.right, resolve))
        case And():
            return all(truthy(value(arg, resolve)) for arg in expr.args)
        case Or():
            return any(truthy(value(arg, resolve)) for arg in expr.args)
        case Not():
            return not truthy(value(expr.arg, resolve))
        case _:
            assert_never(expr)


def holds(expr: Expr, resolve: Resolve) -> bool:
    """Whether a condition's test holds (its value is truthy)."""
    return truthy(value(expr, resolve))
