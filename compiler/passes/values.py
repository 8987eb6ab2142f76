"""Every string and value in a pipeline can travel to a step on every engine, or it is an error.

Engines carry names and values through YAML, JSON, Python source, command lines and process
environments. Some text compiles everywhere but cannot arrive: a lone UTF-16 surrogate (`\\ud800`,
which no UTF-8 file, YAML parser or environment can hold), a NUL byte in an environment value
(`execve` cuts the string there), or an environment string longer than Linux allows one
(128 KiB, `MAX_ARG_STRLEN`). Each is reported once per node, at the node's line (R008).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pipec.ir import graph
from pipec.ir.model import Location, Pipeline, Step
from pipec.passes.context import PassContext

_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_ENV_STRING = 128 * 1024  # bytes of `NAME=value` Linux accepts for one environment string


def values(pipeline: Pipeline, ctx: PassContext) -> Pipeline:
    """Report text that cannot reach a step on every engine."""
    top = pipeline.model_dump(mode="python", exclude={"body", "components"})
    _surrogates(top, "the pipeline", pipeline.location, ctx)
    for component in pipeline.components:
        _surrogates(component.model_dump(), f"component {component.id!r}", None, ctx)
    for node, _ in graph.walk(pipeline.body):
        own = node.model_dump(mode="python", exclude={"then", "otherwise", "body"})
        _surrogates(own, f"{node.kind} {node.id!r}", node.location, ctx)
        if isinstance(node, Step):
            _env(node, ctx)
    return pipeline


def _surrogates(data: Any, where: str, location: Location | None, ctx: PassContext) -> None:
    if not _any_surrogate(data):  # the common case, without building every string's path
        return
    for path, text in _strings(data, ""):
        if _SURROGATE.search(text):
            ctx.error(
                "R008",
                f"{where} holds text that is not valid Unicode (a lone surrogate) in {path}",
                "remove the stray \\ud800-\\udfff character (often a decoding mistake)",
                location,
            )
            return  # one per node is enough to find it


def _any_surrogate(data: Any) -> bool:
    """Whether any string in a dumped model, keys included, holds a lone surrogate."""
    if isinstance(data, str):
        return not data.isascii() and _SURROGATE.search(data) is not None
    if isinstance(data, dict):
        return any(_any_surrogate(key) or _any_surrogate(value) for key, value in data.items())
    if isinstance(data, list | tuple):
        return any(_any_surrogate(value) for value in data)
    return False


def _strings(data: Any, path: str) -> Iterator[tuple[str, str]]:
    """(where, text) for every string in a dumped model, keys included."""
    if isinstance(data, str):
        yield path or "a value", data
    elif isinstance(data, dict):
        for key, value in data.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str):
                yield here, key
            yield from _strings(value, here)
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            yield from _strings(value, f"{path}[{index}]")


def _env(step: Step, ctx: PassContext) -> None:
    for name, value in step.env.items():
        if "\x00" in value:
            ctx.error(
                "R008",
                f"env {name!r} of step {step.id!r} holds a NUL character, which no process "
                "environment can carry",
                "remove the NUL, or pass the value as a step input",
                step.location,
            )
        size = len(f"{name}={value}".encode("utf-8", "surrogatepass"))
        if size > MAX_ENV_STRING:
            ctx.error(
                "R008",
                f"env {name!r} of step {step.id!r} is {size:,} bytes; Linux refuses one "
                f"environment string over {MAX_ENV_STRING:,}",
                "pass large values as a step input (or an artifact), not in env",
                step.location,
            )
