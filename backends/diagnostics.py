"""The one wording of "target T cannot express X" (diagnostic U001), whoever finds it: the shared
capability check, a target's own checks, or an emitter that meets a shape it has no form for."""

from __future__ import annotations

from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import Location

DEFAULT_HINT = "change the pipeline, or compile for a target that supports it (see `pipec targets`)"


def unsupported_feature(
    target: str, node_id: str, location: Location | None, what: str, hint: str = DEFAULT_HINT
) -> Diagnostic:
    """`target 'T' cannot express WHAT (used by 'NODE')`, at the node's line, with a hint."""
    return Diagnostic(
        code="U001",
        message=f"target {target!r} cannot express {what} (used by {node_id!r})",
        hint=hint,
        location=location,
    )
