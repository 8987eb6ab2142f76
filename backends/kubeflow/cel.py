"""pipec's condition IR -> the CEL expressions of KFP trigger policies.

KFP evaluates `triggerPolicy.condition` with CEL over `inputs.parameter_values[...]`, where every
number arrives as a double (a `google.protobuf.Value`). The translation is typed
(`common.conditions`), so that each test means in CEL what it means in Python:

* int against int compares as ints (`int(x) > 3`), anything involving a float compares as doubles
  (literals written with a decimal point, since CEL does not compare int with double);
* a bare operand is its Python truthiness (`x` on an int is `int(x) != 0`);
* strings are CEL string literals with every character that could end or alter the literal
  escaped, so a hostile value can never add to the expression.

Tests CEL cannot express with Python's meaning (lists, dicts, None, optional or `any` values) are
errors, which the target reports as U001 naming the condition.
"""

from __future__ import annotations

import re
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
class Channel:
    """How an operand reads in CEL: the name of a task input parameter and its pipec type."""

    name: str
    type: str


Resolve = Callable[[Operand], Channel]


def to_cel(expr: Expr, resolve: Resolve) -> str:
    """The CEL text of `expr`; `resolve` names the task input that carries each operand."""
    return CelPrinter(resolve).print(expr)


class CelPrinter(InfixPrinter):
    """CEL text over the task's input parameters."""

    def __init__(self, resolve: Resolve) -> None:
        self.resolve = resolve

    def truth(self, operand: Operand) -> str:
        channel = self.resolve(operand)
        if channel.type == "bool":
            return _ref(channel)
        if channel.type not in ZERO:
            raise ConditionError(f"cannot test the truth of a value of type {channel.type}")
        return f"{_side(channel, channel.type)} != {_literal(ZERO[channel.type], channel.type)}"

    def compare(self, expr: Compare) -> str:
        left, right = self._operand(expr.left), self._operand(expr.right)
        kind = compare_kind(_type_of(left), _type_of(right))
        return f"{_text(left, kind)} {expr.op} {_text(right, kind)}"

    def _operand(self, operand: Any) -> Channel | Const:
        if isinstance(operand, Const):
            _type_of(operand)  # a literal CEL cannot compare is an error here
            return operand
        channel = self.resolve(operand)
        if channel.type not in ("bool", *ZERO):
            raise ConditionError(f"cannot compare a value of type {channel.type}")
        return channel


def _type_of(side: Channel | Const) -> str:
    if isinstance(side, Channel):
        return side.type
    value = side.value
    for kind, python in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if isinstance(value, python):  # bool first: a bool is also an int
            return kind
    raise ConditionError(f"cannot compare with the literal {value!r}")


def _text(side: Channel | Const, kind: str) -> str:
    """One side written for a comparison done as `kind` (str, bool, int or float)."""
    if isinstance(side, Channel):
        return _side(side, kind)
    return _literal(side.value, kind)


def _side(channel: Channel, kind: str) -> str:
    # Numbers arrive as doubles: an int comparison converts them back (exact up to 2**53).
    return f"int({_ref(channel)})" if kind == "int" else _ref(channel)


def _literal(value: Any, kind: str) -> str:
    if kind == "str":
        return string_literal(value)
    if kind == "bool":
        return "true" if value else "false"
    if kind == "int":
        return str(int(value))
    return double_literal(float(value))


_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def _ref(channel: Channel) -> str:
    # Channel names are generated from ids and parameter names, so they never need escaping; the
    # single-quoted form is the one KFP itself emits and kfp.local recognises.
    if not _SAFE_NAME.match(channel.name):
        raise ConditionError(f"unexpected channel name {channel.name!r}")
    return f"inputs.parameter_values['{channel.name}']"


def double_literal(value: float) -> str:
    """A CEL double literal (always with a decimal point or an exponent)."""
    text = repr(value)
    if text in ("inf", "-inf", "nan"):
        raise ConditionError(f"{value} has no CEL literal")
    if "." not in text and "e" not in text:
        text += ".0"
    return text


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def string_literal(text: str) -> str:
    """A double-quoted CEL string literal holding exactly `text`."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif 0xD800 <= ord(char) <= 0xDFFF:
            raise ConditionError("a string with a lone surrogate has no CEL literal")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        elif not char.isprintable():
            out.append(f"\\U{ord(char):08x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
