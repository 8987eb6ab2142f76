"""Returned values checked against the step's declared output types, in the one runtime every
engine runs, so a step fails in the same place (and with the same words) everywhere.

The declared types come from the function's own annotations, mapped exactly as the compiler maps
them (`pipec.ir.types.from_annotation`). A few conversions are made, and only these:

* an `int` where `float` is declared becomes a float (the same JSON number);
* a numpy scalar where `int`, `float`, `bool` or `str` is declared becomes the Python value
  (`numpy.float64(0.5)` -> `0.5`), when it is one of that kind;
* a `tuple` where a `list` is declared becomes a list (JSON has only lists);
* a plain tuple of the right length where a NamedTuple is declared gives the fields in order.

Everything else that does not fit is an `OutputTypeError` naming the step, the output, the
declared type and what was returned: a numpy array where `list[float]` is declared, `"abc"` for
`int`, NaN for `float` (JSON has no NaN), a dict for a `pandas.DataFrame`, a value for `-> None`.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from typing import Any

from pipec.ir import types


class OutputTypeError(Exception):
    """A returned value does not fit its declared type (the step's fault, not the runtime's)."""


_Declared = tuple[dict[str, str], dict[str, Any]]
_DECLARED: dict[tuple[Callable[..., Any], str], _Declared] = {}
"""What `declare` found, per function and kind of return: a function's annotations do not
change, and resolving them (`typing.get_type_hints`) is the costliest part of checking a step's
outputs. The local target fills it before it forks the steps' processes (`declare`)."""


def declare(function: Callable[..., Any], returns: str) -> _Declared:
    """The declared outputs of `function` (see `declared_outputs` and `declared_annotations`),
    worked out once per process."""
    target = getattr(function, "func", function)  # a @step object stands for its function
    found = _DECLARED.get((target, returns))
    if found is None:
        found = _DECLARED[target, returns] = (
            _outputs(target, returns),
            _annotations(target, returns),
        )
    return found


def declared_outputs(function: Callable[..., Any], returns: str) -> dict[str, str]:
    """Output name -> declared type string (`any` where nothing is declared or resolvable)."""
    return dict(declare(function, returns)[0])


def declared_annotations(function: Callable[..., Any], returns: str) -> dict[str, Any]:
    """Output name -> the annotation object itself (what picks a user's materializer); outputs
    with no resolvable annotation are left out."""
    return dict(declare(function, returns)[1])


def _outputs(target: Callable[..., Any], returns: str) -> dict[str, str]:
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # an annotation that does not resolve at run time: nothing to check
        return {}
    if "return" not in hints:
        return {}
    annotation = hints["return"]
    if returns == "named":
        try:
            fields = typing.get_type_hints(annotation)
        except Exception:
            return {}
        return {name: types.from_annotation(fields.get(name, Any)) for name in annotation._fields}
    return {"output": types.from_annotation(annotation)}


def _annotations(target: Callable[..., Any], returns: str) -> dict[str, Any]:
    try:
        annotation = typing.get_type_hints(target).get("return")
        if annotation is None:
            return {}
        if returns == "named":
            return dict(typing.get_type_hints(annotation))
    except Exception:  # unresolvable at run time: the value alone chooses
        return {}
    return {"output": annotation}


def named_fields(function: Callable[..., Any]) -> tuple[str, ...] | None:
    """The field names of a declared NamedTuple return type, if any."""
    target = getattr(function, "func", function)
    annotation = getattr(target, "__annotations__", {}).get("return")
    fields = getattr(annotation, "_fields", None)
    return tuple(fields) if isinstance(fields, tuple) else None


def checked(value: Any, declared: str, where: str) -> Any:
    """`value` as the declared type holds it (see the module docstring); OutputTypeError when
    it does not fit. `where` names the step and output for the message."""
    try:
        return _convert(value, types.parse(declared))
    except _Mismatch as exc:
        raise OutputTypeError(
            f"{where} is declared {declared} but the step returned {_describe(value)}"
            + (f" ({exc})" if str(exc) else "")
        ) from None


class _Mismatch(Exception):
    pass


def _convert(value: Any, expr: types.TypeExpr) -> Any:
    value = _numpy_scalar(value)
    match expr.name:
        case "any":
            return value
        case "none":
            if value is not None:
                raise _Mismatch("the function is annotated `-> None`")
            return None
        case "optional":
            assert expr.arg is not None
            return None if value is None else _convert(value, expr.arg)
        case "bool":
            if isinstance(value, bool):
                return value
        case "int":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        case "float":
            if isinstance(value, int | float) and not isinstance(value, bool):
                if not math.isfinite(value):
                    raise _Mismatch("JSON has no NaN or infinity; return None and declare optional")
                return float(value)
        case "str":
            if isinstance(value, str):
                return value
        case "list":
            if isinstance(value, list | tuple):
                return [_convert(v, expr.arg) if expr.arg else v for v in value]
            if _is_array(value):
                raise _Mismatch("return array.tolist(), or declare numpy.ndarray")
        case "dict":
            if isinstance(value, dict) and all(isinstance(k, str) for k in value):
                return {k: _convert(v, expr.arg) if expr.arg else v for k, v in value.items()}
        case "artifact":
            if _is_instance(value, expr.artifact or ""):
                return value
    raise _Mismatch("")


def _numpy_scalar(value: Any) -> Any:
    # numpy scalars (numpy.generic) have `.item()` giving the Python value; checked by module so
    # the runtime never imports numpy itself.
    if type(value).__module__ == "numpy" and hasattr(value, "item") and not _is_array(value):
        return value.item()
    return value


def _is_array(value: Any) -> bool:
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"


def _is_instance(value: Any, qualified: str) -> bool:
    """Whether `value`'s class (or a base of it) is the class named `module.QualName`."""
    return any(_class_name(cls) == qualified for cls in type(value).__mro__)


def _class_name(cls: type) -> str:
    """`module.QualName` as type strings spell it (`bytes` for builtins)."""
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}".replace("<locals>.", "")


def _describe(value: Any) -> str:
    name = _class_name(type(value))
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"a {name} ({shown})"
