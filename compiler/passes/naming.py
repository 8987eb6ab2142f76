"""Names every engine can represent: display names, ids, parameter, port and variable names."""

from __future__ import annotations

import keyword
import re

from pipec.ir import graph, names
from pipec.ir.model import Location, Pipeline, Step
from pipec.passes.context import PassContext

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_NAME = 200
MAX_PARAM = 64


def naming(pipeline: Pipeline, ctx: PassContext) -> Pipeline:
    """Report names no engine can represent and display names used twice."""
    _display(pipeline.name, "pipeline name", pipeline.location, ctx)
    if not names.is_id(pipeline.id):
        _bad_id(pipeline.id, pipeline.location, ctx)
    for param in pipeline.params:
        if not names.PARAM_RE.match(param.name) or len(param.name) > MAX_PARAM:
            ctx.error(
                "N003",
                f"parameter name {param.name!r} cannot be represented on every engine",
                f"use ASCII letters, digits and '_' (at most {MAX_PARAM} characters)",
                pipeline.location,
            )
    for comp in pipeline.components:
        for port in (*comp.inputs, *comp.outputs):
            if not names.PARAM_RE.match(port.name) or len(port.name) > MAX_PARAM:
                ctx.error(
                    "N003",
                    f"input/output name {port.name!r} of {comp.function!r} cannot be represented "
                    "on every engine",
                    f"use ASCII letters, digits and '_' (at most {MAX_PARAM} characters)",
                    None,
                )
    _importable(pipeline, ctx)
    seen_names: dict[str, Step] = {}
    seen_ids: set[str] = set()
    for node, _ in graph.walk(pipeline.body):
        if node.id in seen_ids or not names.is_id(node.id):
            _bad_id(node.id, node.location, ctx)
        seen_ids.add(node.id)
        if not isinstance(node, Step):
            continue
        _display(node.name, f"step name {node.name!r}", node.location, ctx)
        first = seen_names.get(node.name)
        if first is not None:
            ctx.error(
                "N001",
                f"two steps are named {node.name!r} (the first at "
                f"{first.location.file}:{first.location.line})",
                "give one of them another name with `.with_options(name=...)`",
                node.location,
            )
        else:
            seen_names[node.name] = node
        for var in (*node.env, *node.secrets):
            if not _ENV_NAME.match(var):
                ctx.error(
                    "N005",
                    f"{var!r} is not a valid environment variable or secret name",
                    "use ASCII letters, digits and '_', not starting with a digit",
                    node.location,
                )
    return pipeline


def _importable(pipeline: Pipeline, ctx: PassContext) -> None:
    """Every engine imports a component as `module` and gets `function` from it: both must be
    dotted Python names (a hand-written IR may hold a file name or a path instead)."""
    first_use: dict[str, Location] = {}
    for step in graph.steps(pipeline):
        first_use.setdefault(step.component, step.location)
    for comp in pipeline.components:
        for what, name in (("module", comp.module), ("function", comp.function)):
            if not _dotted_name(name):
                ctx.error(
                    "N006",
                    f"component {comp.id!r}: {what} {name!r} is not a Python {what} name "
                    "(dotted identifiers)",
                    "the tracer writes it (e.g. `pkg.steps` and `train`); if this IR was "
                    "written by hand, name the module as Python imports it, not as a file or path",
                    first_use.get(comp.id, pipeline.location),
                )


def _dotted_name(text: str) -> bool:
    parts = text.split(".")
    return all(part.isidentifier() and not keyword.iskeyword(part) for part in parts)


def _display(text: str, what: str, loc: Location | None, ctx: PassContext) -> None:
    if not text.strip():
        ctx.error("N002", f"{what} is empty", "give it a name with visible characters", loc)
    elif _CONTROL.search(text):
        ctx.error(
            "N002",
            f"{what} contains a control character (line break, tab, ...), which engines cannot "
            "show",
            "remove control characters from the name",
            loc,
        )
    elif len(text) > MAX_NAME:
        ctx.error(
            "N002",
            f"{what} is {len(text)} characters long; engines accept at most {MAX_NAME}",
            "shorten the name",
            loc,
        )


def _bad_id(node_id: str, location: Location | None, ctx: PassContext) -> None:
    ctx.error(
        "N004",
        f"id {node_id!r} is not a unique engine-safe id "
        f"(lowercase letters, digits, '_', at most {names.MAX_ID} characters)",
        "ids are made by the tracer; if this IR was written by hand, fix the id",
        location,
    )
