"""Type strings: how the IR spells the type of a parameter, input or output.

A type is a short string so that it reads the same in JSON, in the text form and in diagnostics:

    int | float | str | bool | none | any
    list[T] | dict[str, T] | optional[T]
    artifact[qualified.Name]

The first group (and lists, dicts and optionals of them) are *values*: JSON-able, small, usable in
conditions and as engine parameters. `artifact[...]` is anything else, handed between steps by a
materializer. `any` accepts every type.
"""

from __future__ import annotations

import functools
import math
import types as pytypes
import typing
from dataclasses import dataclass

SCALARS = ("int", "float", "str", "bool", "none", "any")
_CONTAINERS = ("list", "dict", "optional", "artifact")


@dataclass(frozen=True)
class TypeExpr:
    """A parsed type string: `name` plus its argument (item type, or artifact class name)."""

    name: str
    arg: TypeExpr | None = None
    artifact: str | None = None

    def __str__(self) -> str:
        if self.name == "artifact":
            return f"artifact[{self.artifact}]"
        if self.name == "dict":
            return f"dict[str, {self.arg}]"
        if self.arg is not None:
            return f"{self.name}[{self.arg}]"
        return self.name


class TypeSyntaxError(ValueError):
    """A type string that does not follow the grammar above."""


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> TypeExpr:
    """Parse a type string; raise `TypeSyntaxError` when it is malformed.

    Cached: a pipeline names few distinct types but asks about them once per binding.
    """
    expr, rest = _parse(text.strip())
    if rest.strip():
        raise TypeSyntaxError(f"unexpected {rest.strip()!r} in type {text!r}")
    return expr


def _parse(text: str) -> tuple[TypeExpr, str]:
    head = ""
    i = 0
    while i < len(text) and (text[i].isalnum() or text[i] in "_"):
        head += text[i]
        i += 1
    rest = text[i:].lstrip()
    if head in SCALARS:
        return TypeExpr(head), rest
    if head not in _CONTAINERS:
        raise TypeSyntaxError(f"unknown type {head or text!r}")
    if not rest.startswith("["):
        if head in ("list", "dict"):
            return TypeExpr(head, TypeExpr("any")), rest
        raise TypeSyntaxError(f"{head} needs an argument: {head}[...]")
    rest = rest[1:].lstrip()
    if head == "artifact":
        end = rest.find("]")
        name = rest[:end].strip() if end >= 0 else ""
        if not name or any(not part.isidentifier() for part in name.split(".")):
            raise TypeSyntaxError(f"artifact needs a qualified class name: {text!r}")
        return TypeExpr("artifact", artifact=name), rest[end + 1 :].lstrip()
    if head == "dict":
        if not rest.startswith("str"):
            raise TypeSyntaxError("dict keys must be str: dict[str, T]")
        rest = rest[3:].lstrip()
        if not rest.startswith(","):
            raise TypeSyntaxError("dict needs two arguments: dict[str, T]")
        rest = rest[1:].lstrip()
    arg, rest = _parse(rest)
    if not rest.startswith("]"):
        raise TypeSyntaxError(f"missing ']' after {head}[{arg}")
    return TypeExpr(head, arg), rest[1:].lstrip()


def is_value(text: str) -> bool:
    """True when the type is JSON-able (no artifact anywhere inside it)."""
    return _is_value(parse(text))


def _is_value(expr: TypeExpr) -> bool:
    if expr.name == "artifact":
        return False
    return expr.arg is None or _is_value(expr.arg)


def is_artifact(text: str) -> bool:
    """True for `artifact[...]` types."""
    return parse(text).name == "artifact"


def item_type(text: str) -> str | None:
    """The item type of a list type (`any` for `any`), else None."""
    expr = parse(text)
    if expr.name == "any":
        return "any"
    if expr.name == "list" and expr.arg is not None:
        return str(expr.arg)
    return None


def assignable(source: str, target: str) -> bool:
    """Whether a value of type `source` may feed an input of type `target`."""
    return _assignable(parse(source), parse(target))


def _assignable(src: TypeExpr, dst: TypeExpr) -> bool:
    if dst.name == "any" or src.name == "any":
        return True
    if dst.name == "optional":
        assert dst.arg is not None
        if src.name == "none":
            return True
        inner = src.arg if src.name == "optional" else src
        assert inner is not None
        return _assignable(inner, dst.arg)
    if src.name == "optional":
        return False
    if src.name == "int" and dst.name == "float":
        return True
    if src.name != dst.name:
        return False
    if src.name == "artifact":
        return src.artifact == dst.artifact
    if src.arg is None or dst.arg is None:
        return True
    return _assignable(src.arg, dst.arg)


def infer(value: object) -> str | None:
    """The type of a literal; None when it is not JSON-able."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        # JSON has no NaN or infinity, and engines parse parameters as JSON.
        return "float" if math.isfinite(value) else None
    if isinstance(value, str):
        return "str"
    if isinstance(value, list | tuple):
        items = [infer(v) for v in value]
        if any(t is None for t in items):
            return None
        return f"list[{_join([t for t in items if t is not None])}]"
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return None
        items = [infer(v) for v in value.values()]
        if any(t is None for t in items):
            return None
        return f"dict[str, {_join([t for t in items if t is not None])}]"
    return None


def _join(items: list[str]) -> str:
    """The narrowest type every item is assignable to (for list and dict literals)."""
    unique = sorted(set(items))
    if not unique:
        return "any"
    if len(unique) == 1:
        return unique[0]
    if set(unique) == {"float", "int"}:
        return "float"
    if "none" in unique and len(unique) == 2:
        other = next(t for t in unique if t != "none")
        return f"optional[{other}]"
    return "any"


def from_annotation(annotation: object) -> str:
    """Map a Python annotation to a type string; unknown classes become artifacts."""
    if annotation is None or annotation is type(None):
        return "none"
    if annotation is typing.Any or annotation is object:
        return "any"
    simple = {int: "int", float: "float", str: "str", bool: "bool"}
    if isinstance(annotation, type) and annotation in simple:
        return simple[annotation]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is list or origin is list:
        return f"list[{from_annotation(args[0]) if args else 'any'}]"
    if annotation is dict or origin is dict:
        if args and args[0] is not str:
            return _artifact_name(annotation)
        return f"dict[str, {from_annotation(args[1]) if len(args) == 2 else 'any'}]"
    if origin in (typing.Union, pytypes.UnionType):
        members = [a for a in args if a is not type(None)]
        if len(members) == 1 and len(args) == 2:
            return f"optional[{from_annotation(members[0])}]"
        return "any"
    return _artifact_name(annotation)


def _artifact_name(annotation: object) -> str:
    if isinstance(annotation, type):
        module = annotation.__module__
        qualname = annotation.__qualname__
        name = qualname if module == "builtins" else f"{module}.{qualname}"
        return f"artifact[{name.replace('<locals>.', '')}]"
    return "any"


def check_value(value: object, text: str) -> bool:
    """Whether a literal fits a type, element by element (used for constants, defaults and
    run-time values: `[0.1, "x"]` does not fit `list[float]`)."""
    return _fits(value, parse(text))


def _fits(value: object, expr: TypeExpr) -> bool:
    match expr.name:
        case "any":
            return infer(value) is not None
        case "optional":
            return value is None or (expr.arg is not None and _fits(value, expr.arg))
        case "none":
            return value is None
        case "bool":
            return isinstance(value, bool)
        case "int":
            return isinstance(value, int) and not isinstance(value, bool)
        case "float":
            return infer(value) in ("int", "float")
        case "str":
            return isinstance(value, str)
        case "list":
            return isinstance(value, list | tuple) and all(
                expr.arg is None or _fits(item, expr.arg) for item in value
            )
        case "dict":
            return isinstance(value, dict) and all(
                isinstance(key, str) and (expr.arg is None or _fits(item, expr.arg))
                for key, item in value.items()
            )
    return False  # artifacts are never literal values


def coerce(value: object, text: str) -> object:
    """`value` with ints turned into floats wherever the type says float (so `--param lr=1` is
    the same value, and the same cache key, as `lr=1.0`). Other values are returned unchanged."""
    return _coerce(value, parse(text))


def _coerce(value: object, expr: TypeExpr) -> object:
    if expr.name == "optional" and expr.arg is not None:
        return None if value is None else _coerce(value, expr.arg)
    if expr.name == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expr.name == "list" and expr.arg is not None and isinstance(value, list):
        return [_coerce(v, expr.arg) for v in value]
    if expr.name == "dict" and expr.arg is not None and isinstance(value, dict):
        return {k: _coerce(v, expr.arg) for k, v in value.items()}
    return value
