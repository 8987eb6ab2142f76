"""`--set unsupported=warn`: drop what a target cannot express, with a warning naming it.

Without the setting, a feature the target cannot express is an error (U001) naming the node and
the feature. With it, each such use of a *droppable* feature becomes warning W005 naming the
step (or loop, or pipeline) and the feature, and the feature is removed from that node before
anything is emitted: the pipeline still computes the same outputs, it only loses a limit, a
placement, an environment or a schedule. Never silently: one warning per node and feature.

Structural features (conditions, loops, fan-in, nested pipelines, ordering, artifacts) decide what
runs and what each step reads; dropping one would compute something else, so they stay errors,
whose hint says why they cannot be dropped.

A target's own checks (`Backend.check`) refuse finer things than a whole feature: a GPU model on
Docker, a disk larger than Vertex's boot disk, a GPU step with no GPU runner. A refusal about one
option of one node carries it (`Diagnostic.drop`, see `pipec.backends.diagnostics`);
`drop_options` removes exactly that option (`OPTION_DROPS`) with a W005 warning naming the
target, the node and the option, and the driver checks again. A refusal without one (a foreach
inside a foreach, a name the engine cannot take, a constant too long) stays an error, whose hint
says why it cannot be dropped (`cannot_drop`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import assert_never, get_args

from pipec.backends.base import FEATURES, Capabilities, features_used
from pipec.backends.diagnostics import DropOption, unsupported_feature
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

OPTION_DROPS: dict[str, _StepDrop] = {
    **STEP_DROPS,
    # A GPU model alone: the step keeps its GPUs (how many), of whatever model the engine has.
    "gpu_type": lambda step: _resources(step, gpu_type=None),
}
"""Option a target's check refuses (`Diagnostic.drop.option`) -> the step without it (the
pipeline's `schedule` is dropped from the pipeline itself)."""

assert set(get_args(DropOption)) == {*OPTION_DROPS, "schedule"}

DROPPABLE = frozenset({*STEP_DROPS, "loop_parallelism", "schedule"})
"""The features `unsupported=warn` removes (the rest are structural: see the module docstring)."""

WHAT_IS_LOST = {
    "timeout": "it runs without a time limit",
    "retries": "a failed attempt is not retried",
    "cache": "the engine may reuse an earlier result although caching was turned off",
    "resources": "its cpu and memory are not reserved",
    "disk": "its disk is not reserved",
    "gpu": "it gets no GPU",
    "gpu_type": "it gets GPUs of whatever model the engine has",
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

NOT_AN_OPTION = (
    "unsupported=warn drops only an option of a step (its timeout, retries, resources, disk, GPU, "
    "secrets, env or image) or the pipeline's schedule; this is about the pipeline's shape, a "
    "name or a value, so it cannot be dropped"
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
            diagnostics.append(_feature_warning(target, feature, node_id, location))
    if "schedule" in missing:  # the pipeline's own: never a node's
        diagnostics.append(_feature_warning(target, "schedule", pipeline.id, pipeline.location))

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


def _warning(
    target: str,
    what: str,
    node_id: str,
    location: Location | None,
    lost: str,
    hint: str = "remove it there, or compile for a target that supports it (see `pipec targets`)",
    option: str | None = None,
) -> Diagnostic:
    """The one W005 wording: what the target cannot express, what was dropped from where
    (`option`: the one option a target's own check named), and what the node loses."""
    dropped = f"dropped option {option!r} from" if option is not None else "dropped from"
    return Diagnostic(
        code=DROPPED,
        severity="warning",
        message=f"target {target!r} cannot express {what}: {dropped} {node_id!r} "
        f"(unsupported=warn), so {lost}",
        hint=hint,
        location=location,
    )


def _feature_warning(
    target: str, feature: str, node_id: str, location: Location | None
) -> Diagnostic:
    """W005 for a whole feature the capability table lacks."""
    return _warning(target, FEATURES[feature], node_id, location, WHAT_IS_LOST[feature])


def drop_options(pipeline: Pipeline, target: str, refusals: Sequence[Diagnostic]) -> Dropped:
    """The pipeline without the option each refusal names (`Diagnostic.drop`; a target's own
    check made them), one W005 warning per node and option."""
    diagnostics: list[Diagnostic] = []
    by_node: dict[str, list[str]] = {}  # step id -> options to drop
    schedule = False  # the pipeline's own (never a step's, whatever their ids)
    for refusal in refusals:
        drop = refusal.drop
        assert drop is not None, f"{refusal.message} names no option to drop"
        if drop.option == "schedule":
            if schedule:
                continue
            schedule = True
        else:
            options = by_node.setdefault(drop.node, [])
            if drop.option in options:
                continue  # one warning per node and option, however many checks refused it
            options.append(drop.option)
        diagnostics.append(
            _warning(
                target,
                drop.what,
                drop.node,
                refusal.location,
                WHAT_IS_LOST[drop.option],
                refusal.hint,
                option=drop.option,
            )
        )

    def node(n: Node) -> Sequence[Node]:
        options = by_node.get(n.id, [])
        if not options:
            return [n]
        assert isinstance(n, Step), f"a target refused an option of {n.kind} {n.id!r}"
        for option in options:
            n = n.model_copy(update=OPTION_DROPS[option](n))
        return [n]

    result = rewrite.map_nodes(pipeline, node)
    if schedule:
        result = result.model_copy(update={"schedule": None})
    return Dropped(result, diagnostics)


def cannot_drop(diagnostic: Diagnostic) -> Diagnostic:
    """A U001 error that names no option, its hint saying why `unsupported=warn` keeps it (any
    other diagnostic as it is)."""
    if diagnostic.code != "U001" or diagnostic.drop is not None or NOT_AN_OPTION in diagnostic.hint:
        return diagnostic
    hint = f"{diagnostic.hint} ({NOT_AN_OPTION})" if diagnostic.hint else NOT_AN_OPTION
    return diagnostic.model_copy(update={"hint": hint})
