"""Printing the condition language: an IR `Expr` (and its operands and literals) as the text
`pipec.ir.expr` parses back, so that `parse_expr(format_expr(e)) == e`.

Apart from the parser so that what only prints (the optimizer's folding, graphs, outlines) does
not import lark and the grammar (some 40 ms of every `pipec run`).
"""

from __future__ import annotations

import math
import re
from typing import assert_never

from pydantic import JsonValue

from pipec.ir.model import (
    And,
    Compare,
    Const,
    Expr,
    LoopItem,
    Not,
    Operand,
    Or,
    OutputRef,
    ParamRef,
)

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}


def quote(text: str) -> str:
    """A JSON string literal for `text`. Printable characters stay as they are (unicode reads
    better than escapes); everything else -- control characters, line separators, invisible
    format characters, lone surrogates -- is escaped, so the text form is safe to show and save."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return '"' + "".join(_escape_char(ch) for ch in text) + '"'


def _escape_char(ch: str) -> str:
    if ch in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[ch]
    if ch.isprintable():
        return ch
    code = ord(ch)
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def format_name(name: str) -> str:
    """A name as written after a dot or in a declaration: bare when it is an identifier."""
    return name if _NAME_RE.fullmatch(name) else quote(name)


def format_value(value: JsonValue) -> str:
    """A JSON value as a literal: JSON text with sorted keys and `, ` / `: ` separators."""
    match value:
        case None:
            return "null"
        case bool():
            return "true" if value else "false"
        case int():
            return str(value)
        case float():
            if math.isfinite(value):
                return repr(value)  # the shortest text that reads back as the same float
            return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        case str():
            return quote(value)
        case list():
            return "[" + ", ".join(format_value(item) for item in value) + "]"
        case dict():
            items = (f"{quote(key)}: {format_value(value[key])}" for key in sorted(value))
            return "{" + ", ".join(items) + "}"
    raise TypeError(f"not a JSON value: {value!r}")


def format_operand(operand: Operand) -> str:
    """A literal or a reference: `0.9`, `params.n`, `steps.train.model`, `loops.loop_1.item`."""
    match operand:
        case Const():
            return format_value(operand.value)
        case ParamRef():
            return f"params.{format_name(operand.param)}"
        case OutputRef():
            return f"steps.{format_name(operand.step)}.{format_name(operand.output)}"
        case LoopItem():
            return f"loops.{format_name(operand.loop)}.item"
        case _:
            assert_never(operand)


def format_expr(expr: Expr) -> str:
    """The expression as text, with the fewest parentheses that keep its exact shape."""
    match expr:
        case Const() | ParamRef() | OutputRef() | LoopItem():
            return format_operand(expr)
        case Compare():
            return f"{format_operand(expr.left)} {expr.op} {format_operand(expr.right)}"
        case Not():
            inner = format_expr(expr.arg)
            return f"not ({inner})" if _is_infix(expr.arg) else f"not {inner}"
        case And():
            if len(expr.args) < 2:
                return "all(" + ", ".join(format_expr(arg) for arg in expr.args) + ")"
            # A nested `and` needs parentheses too, or it would read back flattened.
            return " and ".join(_parenthesized_if(arg, _is_infix(arg)) for arg in expr.args)
        case Or():
            if len(expr.args) < 2:
                return "any(" + ", ".join(format_expr(arg) for arg in expr.args) + ")"
            # `and` binds tighter than `or`, so only a nested `or` needs parentheses.
            return " or ".join(
                _parenthesized_if(arg, _is_infix(arg) and isinstance(arg, Or)) for arg in expr.args
            )
        case _:
            assert_never(expr)


def _is_infix(expr: Expr) -> bool:
    """Whether the expression prints as `a and b ...` / `a or b ...` (not as `all(...)`)."""
    return isinstance(expr, And | Or) and len(expr.args) >= 2


def _parenthesized_if(expr: Expr, wrap: bool) -> str:
    text = format_expr(expr)
    return f"({text})" if wrap else text
