"""pipec's condition IR -> the CEL expressions of KFP trigger policies.

KFP evaluates `triggerPolicy.condition` with CEL over `inputs.parameter_values[...]`, where every
number arrives as a double (a `google.protobuf.Value`). The translation is typed, so that each test
means in CEL what it means in Python:

* int against int compares as ints (`int(x) > 3`), anything involving a float compares as doubles
  (literals written with a decimal point, since CEL does not compare int with double);
* a bool compared with a number follows Python (`flag == 1` is `flag == true`, never a string or
  int comparison that silently inverts the test, as the KFP SDK does for `flag == 1`);
* a bare operand is its Python truthiness (`x` on an int is `int(x) != 0`);
* strings are CEL string literals with every character that could end or alter the literal
  escaped, so a hostile value can never add to the expression.

Comparisons CEL cannot express with Python's meaning (lists, dicts, None, `any`) are errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import assert_never

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

NUMERIC = ("int", "float")


class ExprError(ValueError):
    """A condition that has no faithful CEL form."""


@dataclass(frozen=True)
class Channel:
    """How an operand reads in CEL: the name of a task input parameter and its pipec type."""

    name: str
    type: str


Resolve = Callable[[ParamRef | OutputRef | LoopItem], Channel]


def to_cel(expr: Expr, resolve: Resolve) -> str:
    """The CEL text of `expr`; `resolve` names the task input that carries each operand."""
    match expr:
        case Compare():
            return _compare(expr, resolve)
        case And():
            return " && ".join(f"({to_cel(arg, resolve)})" for arg in expr.args)
        case Or():
            return " || ".join(f"({to_cel(arg, resolve)})" for arg in expr.args)
        case Not():
            return f"!({to_cel(expr.arg, resolve)})"
        case Const():
            return "true" if expr.value else "false"
        case ParamRef() | OutputRef() | LoopItem():
            return _truthy(resolve(expr))
        case _:
            assert_never(expr)


_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def _ref(channel: Channel) -> str:
    # Channel names are generated from ids and parameter names, so they never need escaping; the
    # single-quoted form is the one KFP itself emits and kfp.local recognises.
    if not _SAFE_NAME.match(channel.name):
        raise ExprError(f"unexpected channel name {channel.name!r}")
    return f"inputs.parameter_values['{channel.name}']"


def _truthy(channel: Channel) -> str:
    ref = _ref(channel)
    match channel.type:
        case "bool":
            return ref
        case "int":
            return f"int({ref}) != 0"
        case "float":
            return f"{ref} != 0.0"
        case "str":
            return f'{ref} != ""'
        case _:
            raise ExprError(f"cannot test the truth of a value of type {channel.type}")


@dataclass(frozen=True)
class _Side:
    """One side of a comparison: either a channel or a literal value."""

    type: str
    channel: Channel | None = None
    value: object = None


def _side(operand: object, resolve: Resolve) -> _Side:
    if isinstance(operand, Const):
        value = operand.value
        if isinstance(value, bool):
            return _Side("bool", value=value)
        if isinstance(value, int):
            return _Side("int", value=value)
        if isinstance(value, float):
            return _Side("float", value=value)
        if isinstance(value, str):
            return _Side("str", value=value)
        raise ExprError(f"cannot compare with the literal {value!r}")
    assert isinstance(operand, ParamRef | OutputRef | LoopItem)
    channel = resolve(operand)
    if channel.type not in ("bool", "int", "float", "str"):
        raise ExprError(f"cannot compare a value of type {channel.type}")
    return _Side(channel.type, channel=channel)


def _compare(expr: Compare, resolve: Resolve) -> str:
    left, right = _side(expr.left, resolve), _side(expr.right, resolve)
    kinds = {left.type, right.type}
    if "str" in kinds:
        if kinds != {"str"}:
            raise ExprError(f"cannot compare {left.type} with {right.type}")
        return f"{_text(left, 'str')} {expr.op} {_text(right, 'str')}"
    if kinds == {"bool"}:
        return f"{_text(left, 'bool')} {expr.op} {_text(right, 'bool')}"
    if "bool" in kinds and expr.op in ("==", "!="):
        # Python: True == 1 and False == 0; any other number equals neither.
        flag, number = (left, right) if left.type == "bool" else (right, left)
        if flag.channel is not None and number.channel is None:
            assert isinstance(number.value, int | float)
            if number.value in (0, 1):
                literal = "true" if number.value == 1 else "false"
                return f"{_ref(flag.channel)} {expr.op} {literal}"
    mode = "int" if kinds <= {"int", "bool"} else "float"
    return f"{_text(left, mode)} {expr.op} {_text(right, mode)}"


def _text(side: _Side, mode: str) -> str:
    """One side written for a comparison done as `mode` (str, bool, int or float)."""
    if side.channel is not None:
        ref = _ref(side.channel)
        if side.type == "bool" and mode in NUMERIC:
            one, zero = ("1", "0") if mode == "int" else ("1.0", "0.0")
            return f"({ref} ? {one} : {zero})"
        if mode == "int":
            return f"int({ref})"
        return ref
    value = side.value
    if mode == "str":
        assert isinstance(value, str)
        return string_literal(value)
    if mode == "bool":
        return "true" if value else "false"
    assert isinstance(value, bool | int | float)
    if mode == "int":
        return str(int(value))
    return double_literal(float(value))


def double_literal(value: float) -> str:
    """A CEL double literal (always with a decimal point or an exponent)."""
    text = repr(value)
    if "." not in text and "e" not in text and "inf" not in text and "nan" not in text:
        text += ".0"
    if text in ("inf", "-inf", "nan"):
        raise ExprError(f"{value} has no CEL literal")
    return text


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def string_literal(text: str) -> str:
    """A double-quoted CEL string literal holding exactly `text`."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif 0xD800 <= ord(char) <= 0xDFFF:
            raise ExprError("a string with a lone surrogate has no CEL literal")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        elif not char.isprintable():
            out.append(f"\\U{ord(char):08x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
