"""Python source for generated DAG files: values printed with `repr`, calls laid out for review.

The DAG emitter builds expressions as small objects (`Code`, `Call`, plain JSON-like values) and
this module prints them. Every literal goes through `repr` (or `ast.unparse` for condition tests),
so the file is valid Python whatever the values are. Identifiers are pasted into names
(`<id>_task`) and Jinja snippets as they are: that is safe only because IR ids, parameter and
output names are checked to be `[a-z][a-z0-9_]*` / ASCII identifiers by the naming pass.
Short expressions stay on one line; longer ones break one item per line, like a formatter would.

It also knows the one Airflow hazard of literal text: strings given to templated operator fields
are Jinja templates. `templated_text` wraps a literal that Jinja (or Airflow's template-file
lookup) would touch in `airflow.sdk.literal(...)`, which Airflow hands to the task unrendered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LINE_LENGTH = 100
INDENT = "    "


@dataclass(frozen=True)
class Code:
    """A Python expression written verbatim: a name, an attribute, a Jinja-free snippet."""

    text: str


@dataclass(frozen=True)
class Argv:
    """A command line: when it has to break, flags stay on one line with their values."""

    items: tuple[Any, ...]


@dataclass(frozen=True)
class Call:
    """`func(*args, **kwargs)`; keyword arguments keep their given order."""

    func: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()


def call(func: str, *args: Any, **kwargs: Any) -> Call:
    """A `Call`, dropping keyword arguments whose value is None (Airflow's defaults apply)."""
    return Call(func, args, tuple((k, v) for k, v in kwargs.items() if v is not None))


def templated_text(text: str, template_ext: Sequence[str] = ()) -> str | Call:
    """`text` for a templated operator field, wrapped in `literal()` when Jinja would change it.

    Jinja acts on `{{`, `{%` and `{#`, and on line ends: it turns `\r\n` and `\r` into `\n`
    and drops one trailing newline (Airflow keeps Jinja's defaults). Other text renders to itself.
    Airflow also reads a template *file* when a value ends with one of the operator's
    `template_ext`.
    """
    jinja_changes = "{" in text or "\r" in text or text.endswith("\n")
    if jinja_changes or (template_ext and text.endswith(tuple(template_ext))):
        return call("literal", text)
    return text


def render(value: Any, indent: int = 0, used: int = 0) -> str:
    """Python source for `value` at nesting level `indent` (4 spaces each), after `used`
    characters already on its first line."""
    inline = _inline(value)
    if len(INDENT * indent) + used + len(inline) <= LINE_LENGTH and "\n" not in inline:
        return inline
    return _broken(value, indent)


def _inline(value: Any) -> str:
    match value:
        case Code():
            return value.text
        case Call():
            parts = [_inline(a) for a in value.args]
            parts += [f"{k}={_inline(v)}" for k, v in value.kwargs]
            return f"{value.func}({', '.join(parts)})"
        case str():
            return py_str(value)
        case bool() | int() | float() | None:
            return repr(value)
        case Argv():
            return _inline(list(value.items))
        case list() | tuple():
            return "[" + ", ".join(_inline(v) for v in value) + "]"
        case Mapping():
            return "{" + ", ".join(f"{_inline(k)}: {_inline(v)}" for k, v in value.items()) + "}"
        case _:
            raise TypeError(f"cannot print {type(value).__name__} as Python source")


def _broken(value: Any, indent: int) -> str:
    inner = INDENT * (indent + 1)
    close = INDENT * indent
    match value:
        case Call():
            lines = [f"{inner}{render(a, indent + 1, 1)}," for a in value.args]
            lines += [f"{inner}{k}={render(v, indent + 1, len(k) + 2)}," for k, v in value.kwargs]
            return f"{value.func}(\n" + "\n".join(lines) + f"\n{close})"
        case Argv():
            return "[\n" + "\n".join(_argv_lines(value.items, indent + 1)) + f"\n{close}]"
        case list() | tuple():
            lines = [f"{inner}{render(v, indent + 1, 1)}," for v in value]
            return "[\n" + "\n".join(lines) + f"\n{close}]"
        case Mapping():
            lines = [
                f"{inner}{_inline(k)}: {render(v, indent + 1, len(_inline(k)) + 3)},"
                for k, v in value.items()
            ]
            return "{\n" + "\n".join(lines) + f"\n{close}}}"
        case _:
            # Scalars and names cannot be broken; a long string stays on its own line.
            return _inline(value)


def _argv_lines(items: tuple[Any, ...], indent: int) -> list[str]:
    """`--flag value` pairs on one line each (other items alone)."""
    lines: list[str] = []
    i = 0
    while i < len(items):
        item = items[i]
        group = [item]
        if isinstance(item, str) and item.startswith("-") and i + 1 < len(items):
            group.append(items[i + 1])
        line = ", ".join(_inline(v) for v in group) + ","
        if len(group) == 2 and len(INDENT * indent) + len(line) > LINE_LENGTH:
            # A long value still breaks after its flag rather than running past the margin.
            lines += [f"{INDENT * indent}{_inline(v)}," for v in group]
        else:
            lines.append(f"{INDENT * indent}{line}")
        i += len(group)
    return lines


def py_str(text: str) -> str:
    """A string literal, double-quoted where `repr` allows it (the house style of formatters)."""
    literal = repr(text)
    # repr picks single quotes unless the text holds a single quote and no double quote; with
    # no double quote inside, the same escapes are valid between double quotes.
    if literal.startswith("'") and '"' not in text:
        return '"' + literal[1:-1] + '"'
    return literal


def assign(name: str, value: Any, indent: int) -> str:
    """`name = value` at nesting level `indent`, laid out by `render`."""
    return f"{INDENT * indent}{name} = {render(value, indent, len(name) + 3)}"
