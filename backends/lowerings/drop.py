"""`--set unsupported=warn`: drop what a target cannot express, with a warning naming it.

Without the setting, a feature the target cannot express is an error (U001) naming the node and
the feature. With it, each such use of a *droppable* feature becomes warning W005 naming the
step (or loop, or pipeline) and the feature, and the feature is removed from that node before
anything is emitted: the pipeline still computes the same outputs, it only loses a limit, a
placement, an environment or a schedule. Never silently: one warning per node and feature.

Structural features (conditions, loops, fan-in, nested pipelines, ordering, artifacts) decide what
runs and what each step reads; dropping one would compute something else, so they stay errors,
whose hint says why they cannot be dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import assert_never

from pipec.backends.base import FEATURES, Capabilities, features_used
from pipec.backends.diagnostics import unsupported_feature
from pipec.ir import rewrite
from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import Condition, Group, Location, Loop, Node, Pipeline, Step

DROPPED = "W005"

_StepDrop = Callable[[Step], dict[str, object]]


def _resources(step: Step, **cleared: None) -> dict[str, object]:
    return {"resources": step.resources.model_copy(update=cleared)}


# Feature -> the fields of a step that carry it, as they are with the feature removed.
STEP_DROPS: dict[str, _StepDrop] = {
    "timeout": lambda step: {"timeout": None},
    "retries": lambda step: {"retries": 0, "retry_delay": 0.0},
    "cache": lambda step: {"cache": True},  # the engine's own caching, which cannot be turned off
    "resources": lambda step: _resources(step, cpu=None, memory=None),
    "disk": lambda step: _resources(step, disk=None),
    "gpu": lambda step: _resources(step, gpu=None, gpu_type=None),
    "secrets": lambda step: {"secrets": ()},
    "env": lambda step: {"env": {}},
    "image": lambda step: {"image": None},
}

DROPPABLE = frozenset({*STEP_DROPS, "loop_parallelism", "schedule"})
"""The features `unsupported=warn` removes (the rest are structural: see the module docstring)."""

WHAT_IS_LOST = {
    "timeout": "it runs without a time limit",
    "retries": "a failed attempt is not retried",
    "cache": "the engine may reuse an earlier result although caching was turned off",
    "resources": "its cpu and memory are not reserved",
    "disk": "its disk is not reserved",
    "gpu": "it gets no GPU",
    "secrets": "its secrets are not set in its environment",
    "env": "its environment variables are not set",
    "image": "it runs in the default image",
    "loop_parallelism": "its iterations are not limited in how many run at once",
    "schedule": "it runs only when started",
}

STRUCTURAL = (
    "unsupported=warn drops only options that do not change what a pipeline computes; this "
    "feature decides what runs or what a step reads, so it cannot be dropped"
)


@dataclass(frozen=True)
class Dropped:
    """What `drop_unsupported` leaves: the pipeline and the diagnostics (W005 warnings for what
    was dropped, U001 errors for what could not be)."""

    pipeline: Pipeline
    diagnostics: list[Diagnostic]


def drop_unsupported(pipeline: Pipeline, target: str, supported: Capabilities) -> Dropped:
    """The pipeline without the droppable features `supported` lacks, one W005 warning per node
    and dropped feature, and one U001 error per use of a structural feature it lacks."""
    used = features_used(pipeline)
    diagnostics: list[Diagnostic] = []
    by_node: dict[str, list[str]] = {}
    missing = supported.missing(set(used))
    for feature in sorted(missing - {"schedule"}):
        for node_id, location in used[feature]:
            if feature not in DROPPABLE:
                hint = f"remove it from {node_id!r}, or compile for a target that supports it"
                diagnostics.append(
                    unsupported_feature(
                        target, node_id, location, FEATURES[feature], f"{hint} ({STRUCTURAL})"
                    )
                )
                continue
            by_node.setdefault(node_id, []).append(feature)
            diagnostics.append(_warning(target, feature, node_id, location))
    if "schedule" in missing:  # the pipeline's own: never a node's
        diagnostics.append(_warning(target, "schedule", pipeline.id, pipeline.location))

    def node(n: Node) -> Sequence[Node]:
        for feature in by_node.get(n.id, []):
            match n:
                case Step():
                    n = n.model_copy(update=STEP_DROPS[feature](n))
                case Loop():
                    n = n.model_copy(update={"parallelism": None})
                case Condition() | Group():
                    raise AssertionError(f"{feature} is not droppable from a {n.kind}")
                case _:
                    assert_never(n)
        return [n]

    result = rewrite.map_nodes(pipeline, node)
    if "schedule" in missing:
        result = result.model_copy(update={"schedule": None})
    return Dropped(result, diagnostics)


def _warning(target: str, feature: str, node_id: str, location: Location | None) -> Diagnostic:
    return Diagnostic(
        code=DROPPED,
        severity="warning",
        message=f"target {target!r} cannot express {FEATURES[feature]}: dropped from "
        f"{node_id!r} (unsupported=warn), so {WHAT_IS_LOST[feature]}",
        hint="remove it there, or compile for a target that supports it (see `pipec targets`)",
        location=location,
    )
