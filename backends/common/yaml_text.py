"""Block-style YAML for JSON-shaped data, written directly: fast, deterministic, injection-proof.

PyYAML builds a node tree for every scalar before writing it, which made it the largest cost of
compiling a 2,000-step pipeline. Pipeline specs only hold dicts with string keys, lists, strings,
numbers, booleans and None, so a direct writer covers them in a fraction of the time. Layout
follows PyYAML's block style (sorted keys, sequences not indented under their key) so the output
reads the same.

Quoting is deliberately conservative: a string is written plain only when it starts with a letter
(after at most two dashes, for command-line flags) or `/`, holds nothing but letters, digits and
`_ . / : = -`, does not end with `:`, and is not a YAML 1.1 boolean or null word.
Everything else is double-quoted with JSON escapes (valid in YAML's double-quoted style), plus
escapes for the characters YAML treats as line breaks or forbids raw. So no value can change the
document's structure or type, whatever it holds.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

_PLAIN = re.compile(r"^(?:-{0,2}[A-Za-z]|/)(?:[A-Za-z0-9_./:=-]*[A-Za-z0-9_./=-])?$")
IMPLICIT_KEY_LIMIT = 1000  # YAML's limit for `key:` is 1024 characters; stay clear of it
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
# Raw in JSON output but not allowed raw (or read as a line break) inside YAML double quotes.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")


def scalar(value: Any) -> str:
    """One scalar as YAML text."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        return string(value)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def string(text: str) -> str:
    """A string, plain when that cannot be misread, else double-quoted."""
    if _PLAIN.match(text) and text.lower() not in _RESERVED:
        return text
    quoted = json.dumps(text, ensure_ascii=False)
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04X}", quoted)


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    if "e" in text and "." not in text:
        # YAML 1.1 reads `1e-05` as a string; `1.0e-05` is a float everywhere.
        mantissa, _, exponent = text.partition("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def dump(data: Any) -> str:
    """One YAML document for JSON-shaped data (keys sorted)."""
    lines: list[str] = []
    if isinstance(data, dict) and data:
        _mapping(data, "", lines)
    elif isinstance(data, list) and data:
        _sequence(data, "", lines)
    else:
        lines.append(_inline(data))
    return "\n".join(lines) + "\n"


def dump_all(documents: Iterable[Any]) -> str:
    """Several documents separated by `---`."""
    return "---\n".join(dump(doc) for doc in documents)


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        if value:
            raise AssertionError("non-empty mappings are written in block style")
        return "{}"
    if isinstance(value, list):
        if value:
            raise AssertionError("non-empty sequences are written in block style")
        return "[]"
    return scalar(value)


def _mapping(data: dict[str, Any], indent: str, lines: list[str]) -> None:
    for key in sorted(data):
        if not isinstance(key, str):
            raise TypeError(f"mapping keys must be strings, got {key!r}")
        value = data[key]
        written = string(key)
        if len(written) > IMPLICIT_KEY_LIMIT:
            _explicit_entry(written, value, indent, lines)
            continue
        head = f"{indent}{written}:"
        if isinstance(value, dict) and value:
            lines.append(head)
            _mapping(value, indent + "  ", lines)
        elif isinstance(value, list) and value:
            lines.append(head)
            _sequence(value, indent, lines)
        else:
            lines.append(f"{head} {_inline(value)}")


def _explicit_entry(written: str, value: Any, indent: str, lines: list[str]) -> None:
    """`? key` / `: value`: YAML reads a plain `key:` only when the key is at most 1024
    characters long (a user's dict key in a constant can be longer)."""
    lines.append(f"{indent}? {written}")
    if isinstance(value, dict) and value:
        lines.append(f"{indent}:")
        _mapping(value, indent + "  ", lines)
    elif isinstance(value, list) and value:
        lines.append(f"{indent}:")
        _sequence(value, indent + "  ", lines)
    else:
        lines.append(f"{indent}: {_inline(value)}")


def _sequence(items: list[Any], indent: str, lines: list[str]) -> None:
    for item in items:
        if isinstance(item, dict) and item:
            # The first key shares the dash's line; the rest line up under it.
            start = len(lines)
            _mapping(item, indent + "  ", lines)
            lines[start] = f"{indent}- {lines[start][len(indent) + 2 :]}"
        elif isinstance(item, list) and item:
            start = len(lines)
            _sequence(item, indent + "  ", lines)
            lines[start] = f"{indent}- {lines[start][len(indent) + 2 :]}"
        else:
            lines.append(f"{indent}- {_inline(item)}")
