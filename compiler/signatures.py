"""What a decorated function declares, read from its signature: a step's component (ports from
its annotations, the module it is imported from, its code hash) and a pipeline's parameters,
with where each `def` is. The tracer (`pipec.tracing`) asks this module; it records nothing.
"""

from __future__ import annotations

import inspect
import linecache
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_type_hints

from pipec.errors import PipecUsageError, relative_file
from pipec.ir import code, names, types
from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import Component, Location, Param, Port


def short(value: object) -> str:
    """A value as a diagnostic quotes it: its repr, cut at 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def def_location(func: Callable[..., Any], root: Path) -> Location:
    """Where `def` of a function is (its code object starts at the first decorator)."""
    filename = inspect.getsourcefile(func) or "<unknown>"
    line = func.__code__.co_firstlineno
    for offset in range(50):
        text = linecache.getline(filename, line + offset).lstrip()
        if text.startswith(("def ", "async def ")):
            line += offset
            break
    return Location(file=relative_file(filename, root), line=line)


def describe_component(func: Callable[..., Any], root: Path, taken: set[str]) -> Component:
    """A component from a function's signature, annotations, module and source."""
    location = def_location(func, root)
    hints = _hints(func)
    inputs: list[Port] = []
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise PipecUsageError(
                "F008",
                f"step {func.__name__!r} takes *{param.name}; steps need named parameters",
                "list every input as a named parameter with a type annotation",
                location,
            )
        type_ = hints.get(param.name, "any")
        if param.default is param.empty:
            inputs.append(Port(name=param.name, type=type_))
        else:
            default = param.default if types.infer(param.default) is not None else None
            inputs.append(Port(name=param.name, type=type_, required=False, default=default))
    outputs, returns = _outputs(func)
    module = module_name(func, root)
    analyzed = code.analyze(func, module, func.__qualname__)
    return Component(
        id=names.unique_id(func.__name__, taken, "component"),
        module=module,
        function=func.__qualname__,
        file=location.file,
        code_hash=analyzed.digest,
        unhashed=analyzed.unhashed,
        inputs=tuple(inputs),
        outputs=outputs,
        returns=returns,
    )


def _hints(func: Callable[..., Any]) -> dict[str, str]:
    try:
        raw = get_type_hints(func)
    except Exception:  # an unresolvable annotation: fall back to the raw objects
        raw = dict(getattr(func, "__annotations__", {}))
    return {name: types.from_annotation(ann) for name, ann in raw.items()}


def _outputs(
    func: Callable[..., Any],
) -> tuple[tuple[Port, ...], Literal["single", "named", "none"]]:
    try:
        hints = get_type_hints(func)
    except Exception:
        hints = dict(getattr(func, "__annotations__", {}))
    if "return" not in hints:
        return (Port(name="output", type="any"),), "single"
    ret = hints["return"]
    if ret is None or ret is type(None):
        return (), "none"
    if isinstance(ret, type) and issubclass(ret, tuple) and hasattr(ret, "_fields"):
        field_hints = get_type_hints(ret)
        ports = tuple(
            Port(name=name, type=types.from_annotation(field_hints.get(name, Any)))
            for name in ret._fields
        )
        return ports, "named"
    return (Port(name="output", type=types.from_annotation(ret)),), "single"


def module_name(func: Callable[..., Any], root: Path) -> str:
    """The module to import `func` from, as a dotted path relative to the project root.

    A function defined in a script run as `__main__` is still importable by its file's path.
    """
    source = inspect.getsourcefile(func)
    if source:
        path = Path(source).resolve()
        try:
            rel = path.relative_to(root)
            return ".".join(rel.with_suffix("").parts)
        except ValueError:
            return path.stem
    return func.__module__


def pipeline_params(
    func: Callable[..., Any], root: Path, diagnostics: list[Diagnostic]
) -> list[Param]:
    """Pipeline parameters from the function's signature; bad defaults become diagnostics."""
    hints = _hints(func)
    location = def_location(func, root)
    params: list[Param] = []
    for p in inspect.signature(func).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            diagnostics.append(
                Diagnostic(
                    code="F008",
                    message=f"pipeline {func.__name__!r} takes *{p.name}; parameters must be named",
                    hint="list every parameter by name with a type annotation",
                    location=location,
                )
            )
            continue
        default = p.default
        type_ = hints.get(p.name)
        if type_ is None:
            type_ = types.infer(default) if default is not p.empty else None
            type_ = type_ or "any"
        if default is p.empty:
            params.append(Param(name=p.name, type=type_))
            continue
        if isinstance(default, tuple):
            default = list(default)
        if types.infer(default) is None:
            if not types.is_value(type_):
                # The annotation itself is the problem; the typecheck pass reports it once.
                params.append(Param(name=p.name, type=type_))
                continue
            diagnostics.append(
                Diagnostic(
                    code="F007",
                    message=f"the default of parameter {p.name!r} is {short(default)}, which is "
                    "not a value (int, float, str, bool, None, or a list / dict of them)",
                    hint="pipeline parameters travel through every engine as JSON; use a JSON-able "
                    "default, or load the object inside a step",
                    location=location,
                )
            )
            params.append(Param(name=p.name, type=type_))
            continue
        params.append(Param(name=p.name, type=type_, required=False, default=default))
    return params
