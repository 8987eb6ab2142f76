"""Each step call matches its function's signature: no unknown keywords, no missing inputs."""

from __future__ import annotations

import difflib

from pipec.ir import graph
from pipec.ir.model import Pipeline
from pipec.passes.context import PassContext


def signature(pipeline: Pipeline, ctx: PassContext) -> Pipeline:
    """Report unknown keywords, missing required inputs and calls of unknown components."""
    comps = graph.components(pipeline)
    for step in graph.steps(pipeline):
        comp = comps.get(step.component)
        if comp is None:
            ctx.error(
                "S003",
                f"step {step.id!r} calls unknown component {step.component!r}",
                "the IR is inconsistent; re-generate it from the Python source",
                step.location,
            )
            continue
        inputs = {p.name: p for p in comp.inputs}
        for name in sorted(set(step.args) - set(inputs)):
            close = difflib.get_close_matches(name, list(inputs), n=1)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else (f"{comp.function!r} takes {', '.join(inputs) or 'no inputs'}")
            )
            ctx.error(
                "S001",
                f"{comp.function}() got an unknown keyword {name!r} (step {step.id!r})",
                hint,
                step.location,
            )
        for port in comp.inputs:
            if port.required and port.name not in step.args:
                ctx.error(
                    "S002",
                    f"{comp.function}() is missing required input {port.name!r} (step {step.id!r})",
                    f"pass {port.name}=... (type {port.type})",
                    step.location,
                )
    return pipeline
