"""Condition tests as Python for the DAG file: branch callables and per-iteration gates.

A condition's test is built as a Python AST from the IR expression (`PythonPrinter`, on the
shared `common.conditions.ExprPrinter`) and printed with `ast.unparse`, so constants of any content
stay valid Python; truthiness is the local runner's (`and`/`or`/`not` over Python comparisons).
Operands read `values[...]` (step outputs from XCom, a loop item as JSON text) and `params[...]`
(the run's parameters).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any, assert_never

from pipec.backends.airflow.pysource import py_str, render
from pipec.backends.common.conditions import ExprPrinter, Operand
from pipec.ir.model import (
    Compare,
    Condition,
    Const,
    Expr,
    LoopItem,
    OutputRef,
    ParamRef,
)


def branch_function(condition: Condition, then_ids: list[str], else_ids: list[str]) -> str:
    """The branch callable: the condition's test as Python, returning the task ids to follow."""
    test = ast.unparse(_expr(condition.test))
    return (
        f"def _when_{condition.id}(values, params):\n"
        f'    """Condition {condition.id!r}: the tasks to follow (`then` when the test holds)."""\n'
        f"    if {test}:\n"
        f"        return {render(then_ids, 2, 7)}\n"
        f"    return {render(else_ids, 1, 7)}\n"
    )


def gate_function(condition: Condition) -> str:
    """The gate callable of a condition inside a foreach: skip unless `side` is taken."""
    test = ast.unparse(_expr(condition.test))
    return (
        f"def _when_{condition.id}(values, params, side):\n"
        f'    """Condition {condition.id!r} in one iteration: skip `side` unless it is taken."""\n'
        f'    taken = "then" if {test} else "otherwise"\n'
        "    if side != taken:\n"
        "        from airflow.sdk.exceptions import AirflowSkipException\n"
        "\n"
        f'        raise AirflowSkipException(f"{condition.id}: {{side}} is not taken")\n'
    )


def _expr(expr: Expr) -> ast.expr:
    """An IR expression as a Python AST (same truthiness as the local runner's evaluator)."""
    return PythonPrinter().print(expr)


_OPS: dict[str, type[ast.cmpop]] = {
    "==": ast.Eq,
    "!=": ast.NotEq,
    "<": ast.Lt,
    "<=": ast.LtE,
    ">": ast.Gt,
    ">=": ast.GtE,
}


class PythonPrinter(ExprPrinter[ast.expr]):
    """Python over the callable's `values` and `params`: the local target's semantics as they are
    (Python's truth and comparisons), so nothing needs typing here."""

    def compare(self, expr: Compare) -> ast.expr:
        op = _OPS[expr.op]()
        return ast.Compare(self._value(expr.left), [op], [self._value(expr.right)])

    def all_of(self, parts: Sequence[ast.expr]) -> ast.expr:
        return ast.BoolOp(ast.And(), list(parts))

    def any_of(self, parts: Sequence[ast.expr]) -> ast.expr:
        return ast.BoolOp(ast.Or(), list(parts))

    def negate(self, part: ast.expr) -> ast.expr:
        return ast.UnaryOp(ast.Not(), part)

    def constant_truth(self, value: Any) -> ast.expr:
        return _literal(value)

    def truth(self, operand: Operand) -> ast.expr:
        return self._value(operand)

    def _value(self, operand: Const | Operand) -> ast.expr:
        match operand:
            case Const():
                return _literal(operand.value)
            case ParamRef():
                return ast.Subscript(ast.Name("params"), _string(operand.param))
            case OutputRef():
                key = f"{operand.step}.{operand.output}"
                return ast.Subscript(ast.Name("values"), _string(key))
            case LoopItem():
                loads = ast.Attribute(ast.Name("json"), "loads")
                return ast.Call(loads, [ast.Subscript(ast.Name("values"), _string("item"))], [])
            case _:
                assert_never(operand)


def _literal(value: Any) -> ast.expr:
    if isinstance(value, list):
        return ast.List([_literal(v) for v in value])
    if isinstance(value, dict):
        return ast.Dict([_string(k) for k in value], [_literal(v) for v in value.values()])
    if isinstance(value, str):
        return _string(value)
    return ast.Constant(value)


def _string(text: str) -> ast.expr:
    # ast.unparse quotes strings its own way; a name node holding `py_str`'s literal prints that
    # literal as is, so the test reads in the same (double-quoted) style as the rest of the file.
    return ast.Name(py_str(text))
