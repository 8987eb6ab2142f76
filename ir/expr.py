"""The condition language: parse `steps.evaluate.output > 0.9 and not params.dev` to an IR `Expr`
and print an `Expr` back, so that `parse_expr(format_expr(e)) == e` for every expression.

The grammar lives in `expr.lark`; the text form of whole pipelines (`pipec.ir.text`) imports it, and
reuses the builder defined here and the literal and name printers re-exported here, so both read
and write operands the same way. The printers live in `pipec.ir.expr_print`, which does not import
lark: what only prints expressions (the optimizer, graphs) stays off the parser.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterator
from typing import Any, cast

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lark import PostLex
from pydantic import JsonValue

from pipec.ir.expr_print import (
    format_expr,
    format_name,
    format_operand,
    format_value,
    quote,
)
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

__all__ = [
    "ExprSyntaxError",
    "SourceSyntaxError",
    "format_expr",
    "format_name",
    "format_operand",
    "format_value",
    "parse_expr",
    "quote",
]

# --------------------------------------------------------------------------------------------
# Errors.


class SourceSyntaxError(ValueError):
    """Text that does not follow a grammar; the message shows the offending line with a caret."""

    def __init__(self, problem: str, line: int, column: int, text: str) -> None:
        self.problem = problem
        self.line = line
        self.column = column
        super().__init__(_render_error(problem, line, column, text))


class ExprSyntaxError(SourceSyntaxError):
    """A condition expression that does not parse."""


class BuildError(Exception):
    """Raised by builder callbacks for text the grammar accepts but the IR cannot take (duplicate
    keys, a fraction where a count belongs); the parse entry points turn it into their own
    `SourceSyntaxError` subclass."""

    def __init__(self, problem: str, token: Token) -> None:
        super().__init__(problem)
        self.problem = problem
        self.token = token


def _render_error(problem: str, line: int, column: int, text: str) -> str:
    """`line L, column C: problem`, then the source line (clipped around the column) and a caret."""
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        return f"line {line}, column {column}: {problem}"
    source = lines[line - 1].rstrip("\r")
    start = max(0, column - 60)
    snippet = source[start : start + 100]
    # Escape what would garble a terminal (tabs stay: they keep the caret roughly aligned).
    shown = "".join(ch if ch.isprintable() or ch == "\t" else "?" for ch in snippet)
    caret = "".join("\t" if ch == "\t" else " " for ch in shown[: column - 1 - start]) + "^"
    return f"line {line}, column {column}: {problem}\n    {shown}\n    {caret}"


def describe_lark_error(exc: UnexpectedInput, text: str, parser: Lark) -> tuple[int, int, str]:
    """Line, column and a readable problem statement for one of lark's parse errors."""
    if isinstance(exc, UnexpectedCharacters):
        if exc.char == '"':
            problem = "malformed string (unterminated, a raw control character, or a bad escape)"
            return exc.line, exc.column, problem
        problem = f"unexpected character {exc.char!r}"
        return exc.line, exc.column, _with_expected(problem, exc.allowed, parser)
    if isinstance(exc, UnexpectedToken):
        expected = exc.accepts or exc.expected
        if exc.token.type == "$END":
            line, column = _end_position(text)
            return line, column, _with_expected("unexpected end of input", expected, parser)
        keywords = {t.pattern.value for t in parser.terminals if t.pattern.type == "str"}
        problem = f"unexpected {_describe_token(exc.token, keywords)}"
        problem = _with_expected(problem, expected, parser)
        if exc.token.type == "COMPARE_OP":
            problem += " (a comparison takes two plain operands: no chains, no parentheses)"
        return exc.line, exc.column, problem
    if isinstance(exc, UnexpectedEOF):
        line, column = _end_position(text)
        expected = {str(name) for name in exc.expected}
        return line, column, _with_expected("unexpected end of input", expected, parser)
    return exc.line, exc.column, str(exc)


def _end_position(text: str) -> tuple[int, int]:
    """Just after the last non-blank character: where a missing token belongs."""
    stripped = text.rstrip()
    line = stripped.count("\n") + 1
    column = len(stripped) - (stripped.rfind("\n") + 1) + 1
    return line, column


_TOKEN_KINDS = {
    "NAME": "name",
    "STRING": "string",
    "NUMBER": "number",
    "REFERENCE": "reference",
    "COMPARE_OP": "comparison operator",
}


def _describe_token(token: Token, keywords: set[str]) -> str:
    text = token.value if len(token.value) <= 40 else token.value[:37] + "..."
    # A keyword where it cannot stand lexes as a name (see `WholeWords`); show it as a keyword.
    kind = None if text in keywords else _TOKEN_KINDS.get(token.type)
    return f"{kind} {text!r}" if kind in ("name", "number", "reference") else repr(text)


# Sets of expected terminals that read better as one phrase, and the phrase.
_EXPECTED_GROUPS = (
    (
        frozenset({"'params'", "'steps'", "'loops'", "a reference"}),
        "a reference (params.NAME, steps.STEP.OUTPUT, loops.LOOP.item)",
    ),
    (
        frozenset({"a number", "a string", "'true'", "'false'", "'null'", "'['", "'{'"}),
        "a literal",
    ),
    (frozenset({"'Infinity'", "'-Infinity'", "'NaN'"}), ""),
    (frozenset({"a name", "a string"}), "a name"),
)


def _with_expected(problem: str, expected: set[str] | frozenset[str], parser: Lark) -> str:
    shown = {_describe_terminal(name, parser) for name in expected}
    for members, phrase in _EXPECTED_GROUPS:
        if members <= shown:
            shown -= members
            if phrase:
                shown.add(phrase)
    if not shown:
        return problem
    ordered = sorted(shown, key=lambda s: (s.startswith("'"), s))
    if len(ordered) == 1:
        return f"{problem}; expected {ordered[0]}"
    return f"{problem}; expected one of: {', '.join(ordered)}"


def _describe_terminal(name: str, parser: Lark) -> str:
    if name == "$END":
        return "end of input"
    if name in _TOKEN_KINDS:
        article = "an" if _TOKEN_KINDS[name][0] in "aeiou" else "a"
        return f"{article} {_TOKEN_KINDS[name]}"
    try:
        pattern = parser.get_terminal(name).pattern
    except KeyError:
        return name
    if pattern.type == "str":
        return f"'{pattern.value}'"
    return name.lower()


# --------------------------------------------------------------------------------------------
# Parsing.


def _integer_or_float(token: Token) -> int | float:
    text = token.value
    if "." in text or "e" in text or "E" in text:
        return float(text)
    return int(text)


class ExprBuilder(Transformer[Token, Any]):
    """Builds IR values while lark parses (an inline LALR transformer: no parse tree is kept).

    Every method receives the children of one grammar rule of `expr.lark`; `pipec.ir.text` extends
    this class with the rules of `pir.lark`. Every rule that lark does not inline needs a method
    here (the tests check it): a rule without one would put a lark tree into the IR.
    """

    def or_expr(self, children: list[Expr]) -> Or:
        return Or(args=tuple(children))

    def and_expr(self, children: list[Expr]) -> And:
        return And(args=tuple(children))

    def not_(self, children: list[Expr]) -> Not:
        return Not(arg=children[0])

    def all_(self, children: list[Expr]) -> And:
        return And(args=tuple(children))

    def any_(self, children: list[Expr]) -> Or:
        return Or(args=tuple(children))

    def compare(self, children: list[Any]) -> Compare:
        left, op, right = children
        return Compare(op=op.value, left=left, right=right)

    def const(self, children: list[JsonValue]) -> Const:
        return Const(value=children[0])

    def plain_reference(self, children: list[Token]) -> ParamRef | OutputRef | LoopItem:
        token = children[0]
        kind, *parts = token.value.split(".")
        if kind == "params" and len(parts) == 1:
            return ParamRef(param=parts[0])
        if kind == "steps" and len(parts) == 2:
            return OutputRef(step=parts[0], output=parts[1])
        if kind == "loops" and len(parts) == 2 and parts[1] == "item":
            return LoopItem(loop=parts[0])
        shapes = {"params": "params.NAME", "steps": "steps.STEP.OUTPUT", "loops": "loops.LOOP.item"}
        raise BuildError(f"malformed reference {token.value!r}: expected {shapes[kind]}", token)

    def param_ref(self, children: list[Token]) -> ParamRef:
        return ParamRef(param=children[0])

    def output_ref(self, children: list[Token]) -> OutputRef:
        return OutputRef(step=children[0], output=children[1])

    def loop_item(self, children: list[Token]) -> LoopItem:
        return LoopItem(loop=children[0])

    def quoted_name(self, children: list[Token]) -> Token:
        # Names stay tokens (a str whose `.value` is the name) so that builders can say where a
        # duplicate is; pydantic turns them into plain strings.
        return Token.new_borrow_pos("NAME", self.string(children), children[0])

    def string(self, children: list[Token]) -> str:
        decoded: str = json.loads(children[0].value)
        return decoded

    def number(self, children: list[Token]) -> int | float:
        return _integer_or_float(children[0])

    def infinity(self, children: list[Token]) -> float:
        return math.inf

    def minus_infinity(self, children: list[Token]) -> float:
        return -math.inf

    def nan(self, children: list[Token]) -> float:
        return math.nan

    def true(self, children: list[Token]) -> bool:
        return True

    def false(self, children: list[Token]) -> bool:
        return False

    def null(self, children: list[Token]) -> None:
        return None

    def array(self, children: list[JsonValue]) -> list[JsonValue]:
        return children

    def pair(self, children: list[Any]) -> tuple[Token, JsonValue]:
        return children[0], children[1]

    def object(self, children: list[tuple[Token, JsonValue]]) -> dict[str, JsonValue]:
        result: dict[str, JsonValue] = {}
        for token, value in children:
            key = self.string([token])
            if key in result:
                raise BuildError(f"duplicate key {quote(key)} in object", token)
            result[key] = value
        return result


class WholeWords(PostLex):
    """Makes the lexer read identifier-like words whole in every parser state.

    lark's contextual lexer only tries the terminals the parser can take next. Where a keyword can
    come but a name cannot, `items` would lex as the keyword `item` followed by `s`. With `NAME`
    always tried, `items` is one word (and a clear error); a word that spells a keyword the parser
    can take still becomes that keyword, and where only names fit, keywords are plain names.
    """

    always_accept = ("NAME",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        return stream


@functools.cache
def _parser() -> Lark:
    """The expression parser, built once (building the LALR tables is the slow part)."""
    return Lark.open_from_package(
        "pipec.ir",
        "expr.lark",
        parser="lalr",
        start="expr",
        transformer=ExprBuilder(),
        postlex=WholeWords(),
        maybe_placeholders=False,
    )


def parse_expr(text: str) -> Expr:
    """Parse a condition expression; raise `ExprSyntaxError` (with line and column) when it does
    not follow the grammar."""
    parser = _parser()
    try:
        # The builder turns the whole parse into an `Expr` (lark's annotation says tree).
        result = cast(Expr, parser.parse(text))
    except UnexpectedInput as exc:
        line, column, problem = describe_lark_error(exc, text, parser)
        raise ExprSyntaxError(problem, line, column, text) from None
    except BuildError as exc:
        raise ExprSyntaxError(
            exc.problem, exc.token.line or 0, exc.token.column or 0, text
        ) from None
    return result
