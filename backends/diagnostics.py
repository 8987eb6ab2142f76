"""The one wording of "target T cannot express X" (diagnostic U001), whoever finds it: the shared
capability check, a target's own checks, or an emitter that meets a shape it has no form for.

A refusal about one option of one step (its GPU type, its disk, ...) says so (`drop`): with
`--set unsupported=warn` the driver drops that option from that step and checks again
(`pipec.backends.lowerings.drop`). A refusal without it is about the pipeline's shape or its
values, which nothing can drop.
"""

from __future__ import annotations

from typing import Literal

from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import Droppable, Location

DEFAULT_HINT = "change the pipeline, or compile for a target that supports it (see `pipec targets`)"

DropOption = Literal[
    "timeout",
    "retries",
    "cache",
    "resources",
    "disk",
    "gpu",
    "gpu_type",
    "secrets",
    "env",
    "image",
    "schedule",
]
"""The options `unsupported=warn` can drop from the node a refusal names (`schedule`: from the
pipeline); `pipec.backends.lowerings.drop` says what each leaves."""


def unsupported_feature(
    target: str,
    node_id: str,
    location: Location | None,
    what: str,
    hint: str = DEFAULT_HINT,
    drop: DropOption | None = None,
) -> Diagnostic:
    """`target 'T' cannot express WHAT (used by 'NODE')`, at the node's line, with a hint;
    `drop`: the option of the node that `unsupported=warn` may drop to resolve it."""
    return Diagnostic(
        code="U001",
        message=f"target {target!r} cannot express {what} (used by {node_id!r})",
        hint=hint,
        location=location,
        drop=Droppable(node=node_id, option=drop, what=what) if drop is not None else None,
    )
