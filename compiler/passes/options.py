"""Step and pipeline options hold values engines accept: quantities, counts, durations, cron."""

from __future__ import annotations

import re

from pipec.ir import graph, quantity
from pipec.ir.model import Loop, Pipeline, Step
from pipec.passes.context import PassContext

_CRON_FIELD = re.compile(r"^[0-9A-Za-z*,/\-?LW#]+$")
_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def options(pipeline: Pipeline, ctx: PassContext) -> Pipeline:
    """Report option values that no engine would accept."""
    if pipeline.schedule is not None and not valid_cron(pipeline.schedule):
        ctx.error(
            "R005",
            f"schedule {pipeline.schedule!r} is not a cron expression",
            "use five fields (minute hour day-of-month month day-of-week), e.g. '0 3 * * *', "
            "or a macro like '@daily'",
            pipeline.location,
        )
    for node, _ in graph.walk(pipeline.body):
        if isinstance(node, Step):
            _step(node, ctx)
        elif isinstance(node, Loop) and node.parallelism is not None and node.parallelism < 1:
            ctx.error(
                "R004",
                "foreach parallelism must be >= 1",
                "leave it out for no limit",
                node.location,
            )
    return pipeline


def valid_cron(text: str) -> bool:
    """Five cron fields, or one of the common @macros."""
    if text.strip() in _CRON_MACROS:
        return True
    fields = text.split()
    return len(fields) == 5 and all(_CRON_FIELD.match(f) for f in fields)


def _step(step: Step, ctx: PassContext) -> None:
    r = step.resources
    loc = step.location
    if r.cpu is not None and r.cpu <= 0:
        ctx.error("R001", f"step {step.id!r} asks for {r.cpu} CPUs", "ask for more than 0", loc)
    for what, value in (("memory", r.memory), ("disk", r.disk)):
        if value is not None and not quantity.is_quantity(value):
            ctx.error(
                "R002",
                f"{what} {value!r} of step {step.id!r} is not a quantity",
                "write e.g. '512Mi', '16Gi' or '2G'",
                loc,
            )
    if r.gpu is not None and r.gpu < 0:
        ctx.error("R003", f"step {step.id!r} asks for {r.gpu} GPUs", "ask for 0 or more", loc)
    if r.gpu_type and not r.gpu:
        ctx.error(
            "R003",
            f"step {step.id!r} names gpu_type {r.gpu_type!r} but asks for no GPU",
            "add gpu=1 (or more) to its Resources",
            loc,
        )
    if step.retries < 0 or step.retry_delay < 0:
        ctx.error(
            "R004",
            f"step {step.id!r} has negative retries or retry delay",
            "use retries >= 0 and a delay >= 0",
            loc,
        )
    if step.image is not None and not step.image.strip():
        ctx.error("R007", f"step {step.id!r} has an empty image", "name an image, or drop it", loc)
    if step.timeout is not None and step.timeout <= 0:
        ctx.error("R004", f"step {step.id!r} has timeout {step.timeout}", "use a timeout > 0", loc)
