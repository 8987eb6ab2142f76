"""Condition tests (the IR's `Expr`) printed in an engine's own expression language: the base every
printer shares, and the typing decisions that languages without Python's semantics need.

What a test means is fixed by the local target, which evaluates it in Python: `and`, `or`, `not`
over truth values, a bare operand is its Python truth, comparisons are Python's. Typecheck T106 has
already rejected comparisons between different kinds of values (a bool with a number, a string with
anything else), so a printer sees only comparisons of two numbers, two strings, two bools, or an
optional/`any` value with something (which only Python-like targets can express).

`ExprPrinter` has one method per kind of node; `print` dispatches exhaustively, so a new kind of
node is a type error in every printer rather than a silent gap. A printer for a typed language (CEL
for KFP now; GitHub's `${{ }}` and Argo's `when` next) asks `compare_kind` how two typed operands
compare and `ZERO` what a bare operand is compared with to get its truth.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Generic, TypeVar, assert_never

from pipec.ir.model import And, Compare, Const, Expr, LoopItem, Not, Or, OutputRef, ParamRef

T = TypeVar("T")
Operand = ParamRef | OutputRef | LoopItem

ZERO: dict[str, Any] = {"int": 0, "float": 0.0, "str": ""}
"""A bare operand of these types is true when it differs from this value (Python's truth); a bare
bool is itself. Other types (lists, dicts, optionals, `any`) have no typed-language form."""


class ConditionError(ValueError):
    """A condition the target's expression language cannot express with Python's meaning."""


def compare_kind(left: str, right: str) -> str:
    """How two operands of these (scalar) types compare: as `int`s only when both are ints, as
    `float`s when numbers mix (Python compares 1 == 1.0 by value), else as `str` or `bool`."""
    kinds = {left, right}
    if kinds == {"int"}:
        return "int"
    if kinds <= {"int", "float"}:
        return "float"
    if kinds in ({"str"}, {"bool"}):
        return left
    raise ConditionError(f"cannot compare {left} with {right}")


class ExprPrinter(ABC, Generic[T]):
    """An IR expression in one target's language (`T`: text, or a syntax tree)."""

    def print(self, expr: Expr) -> T:
        """The whole test."""
        match expr:
            case Compare():
                return self.compare(expr)
            case And():
                return self.all_of([self.print(arg) for arg in expr.args])
            case Or():
                return self.any_of([self.print(arg) for arg in expr.args])
            case Not():
                return self.negate(self.print(expr.arg))
            case Const():
                return self.constant_truth(expr.value)
            case ParamRef() | OutputRef() | LoopItem():
                return self.truth(expr)
            case _:
                assert_never(expr)

    @abstractmethod
    def compare(self, expr: Compare) -> T:
        """`left op right`."""

    @abstractmethod
    def all_of(self, parts: Sequence[T]) -> T:
        """`and` of two or more tests."""

    @abstractmethod
    def any_of(self, parts: Sequence[T]) -> T:
        """`or` of two or more tests."""

    @abstractmethod
    def negate(self, part: T) -> T:
        """`not` of a test."""

    @abstractmethod
    def constant_truth(self, value: Any) -> T:
        """A constant used as a whole test."""

    @abstractmethod
    def truth(self, operand: Operand) -> T:
        """A bare operand used as a test: its Python truth."""



class InfixPrinter(ExprPrinter[str]):
    """The connectives of the C-style expression languages engines evaluate (CEL, GitHub
    expressions): `&&`, `||`, `!`, `true` / `false`. A language states only its operands."""

    def all_of(self, parts: Sequence[str]) -> str:
        return " && ".join(f"({part})" for part in parts)

    def any_of(self, parts: Sequence[str]) -> str:
        return " || ".join(f"({part})" for part in parts)

    def negate(self, part: str) -> str:
        return f"!({part})"

    def constant_truth(self, value: Any) -> str:
        return "true" if value else "false"
