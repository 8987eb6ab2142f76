"""pipec's condition IR -> GitHub Actions expressions (a job's `if:`), typed like the CEL printer.

A job output is text; `fromJSON(...)` turns the JSON text the step runtime wrote into a number, a
bool or a string, so each operand is `fromJSON(needs.<job>.outputs.<name>)`. GitHub evaluates
numbers as doubles (exact for integers up to 2**53, like CEL in KFP), compares int with float by
value as Python does, and `&&`, `||`, `!` are boolean operators over the tests printed here.

What GitHub cannot say with Python's meaning is a `ConditionError`, and the target then decides
the test in a job of its own, in Python (see `workflow`):

* string comparisons: GitHub compares strings ignoring case (`'A' == 'a'` holds), so only a
  string's truth (`!= ''`, which no other string equals in any case) is printed;
* ordering of bools, lists, dicts, optionals and `any` values, NaN and infinities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipec.backends.common.conditions import (
    ZERO,
    ConditionError,
    InfixPrinter,
    Operand,
    compare_kind,
)
from pipec.ir.model import Compare, Const, Expr


@dataclass(frozen=True)
class Value:
    """How an operand reads in an expression: its expression text and its pipec type."""

    text: str
    type: str


Resolve = Callable[[Operand], Value]


def to_github(expr: Expr, resolve: Resolve) -> str:
    """The expression text of `expr` (without `${{ }}`); `resolve` reads each operand."""
    return GithubPrinter(resolve).print(expr)


class GithubPrinter(InfixPrinter):
    """GitHub expression text over job outputs."""

    def __init__(self, resolve: Resolve) -> None:
        self.resolve = resolve

    def truth(self, operand: Operand) -> str:
        value = self.resolve(operand)
        if value.type == "bool":
            return value.text
        if value.type not in ZERO:
            raise ConditionError(f"cannot test the truth of a value of type {value.type}")
        return f"{value.text} != {_literal(ZERO[value.type], value.type)}"

    def compare(self, expr: Compare) -> str:
        left, right = self._operand(expr.left), self._operand(expr.right)
        kind = compare_kind(_type_of(left), _type_of(right))
        if kind == "str":
            raise ConditionError("GitHub compares strings ignoring case")
        if kind == "bool" and expr.op not in ("==", "!="):
            raise ConditionError("GitHub has no ordering of booleans")
        return f"{_text(left, kind)} {expr.op} {_text(right, kind)}"

    def _operand(self, operand: Any) -> Value | Const:
        if isinstance(operand, Const):
            _type_of(operand)  # a literal GitHub cannot compare is an error here
            return operand
        value = self.resolve(operand)
        if value.type not in ("bool", *ZERO):
            raise ConditionError(f"cannot compare a value of type {value.type}")
        return value


def _type_of(side: Value | Const) -> str:
    if isinstance(side, Value):
        return side.type
    value = side.value
    for kind, python in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if isinstance(value, python):  # bool first: a bool is also an int
            return kind
    raise ConditionError(f"cannot compare with the literal {value!r}")


def _text(side: Value | Const, kind: str) -> str:
    return side.text if isinstance(side, Value) else _literal(side.value, kind)


def _literal(value: Any, kind: str) -> str:
    if kind == "str":
        return string_literal(value)
    if kind == "bool":
        return "true" if value else "false"
    if kind == "int":
        return str(int(value))
    return number_literal(float(value))


def number_literal(value: float) -> str:
    """A GitHub number literal (JSON number syntax, always with a point or an exponent)."""
    text = repr(value)
    if text in ("inf", "-inf", "nan"):
        raise ConditionError(f"{value} has no GitHub expression literal")
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def string_literal(text: str) -> str:
    """A single-quoted GitHub string literal holding exactly `text` (`'` doubled). Printed only
    for `''`; kept general so other callers cannot get the escaping wrong."""
    if "\n" in text or "\r" in text or "}}" in text:
        # A literal inside `${{ }}` cannot hold a line break or close the expression.
        raise ConditionError("a string with a line break or '}}' has no GitHub literal")
    return "'" + text.replace("'", "''") + "'"


def expr(text: str) -> str:
    """`${{ text }}`."""
    return "${{ " + text + " }}"


def output_of(job: str, name: str) -> str:
    """A job output of another job, as an expression."""
    return expr(f"needs.{job}.outputs.{name}")
