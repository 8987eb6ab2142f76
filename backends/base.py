"""What every target backend is: capabilities, settings, lowering, emit, and an optional submitter.

A backend states only what it adds or does differently; shared checks (does the pipeline use a
feature this target cannot honor?) live here so every target reports them the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from pipec.ir import graph
from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import (
    Collect,
    Condition,
    Const,
    Group,
    Loop,
    OutputRef,
    ParamRef,
    Pipeline,
    Step,
)

# Every feature a pipeline can use, with the words `pipec targets` shows for it.
FEATURES: dict[str, str] = {
    "condition": "when / otherwise",
    "loop_literal": "foreach over a literal list",
    "loop_param": "foreach over a list parameter",
    "loop_output": "foreach over a step output (runtime fan-out)",
    "loop_parallelism": "foreach parallelism limit",
    "collect": "collect (fan-in)",
    "nested": "nested pipelines",
    "after": ".after() ordering",
    "retries": "retries and retry delay",
    "timeout": "step timeout",
    "cache": "step caching",
    "resources": "cpu / memory",
    "disk": "disk requests",
    "gpu": "GPU requests",
    "secrets": "secrets",
    "env": "environment variables",
    "image": "per-step image",
    "schedule": "schedule",
    "artifacts": "artifacts between steps",
}

Bundle = dict[str, str]
"""Relative path -> file text. What `emit` returns and `pipec compile -o DIR` writes."""


class TargetSettings(BaseModel):
    """Base of a target's settings (`[tool.pipec.targets.<name>]` and `--set key=value`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ContainerSettings(TargetSettings):
    """Settings shared by every target that runs steps in containers."""

    image: str | None = None
    artifact_root: str | None = None


class SettingsError(Exception):
    """Target settings that do not validate; the message lists the known keys."""


def require_images(pipeline: Pipeline, default_image: str | None, target: str) -> None:
    """Targets that run steps in containers need an image for each: the step's own or the
    target's `image` setting. One error names every step without one."""
    if default_image is not None:
        return
    bare = [s.id for s in graph.steps(pipeline) if s.image is None]
    if bare:
        shown = ", ".join(bare[:5]) + (", ..." if len(bare) > 5 else "")
        raise SettingsError(
            f"target {target!r} needs an image for step{'s' if len(bare) > 1 else ''} {shown}: "
            f"set `image` in [tool.pipec.targets.{target}] or --set image=..., or give the step "
            "its own image"
        )


def load_settings(
    model: type[TargetSettings], target: str, raw: Mapping[str, Any]
) -> TargetSettings:
    """Validate raw settings against a target's model, turning errors into one clear message."""
    known = sorted(model.model_fields)
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise SettingsError(
            f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for target "
            f"{target!r}; known settings: {', '.join(known) or '(none)'}"
        )
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid settings for target {target!r}: {problems}") from None


@dataclass(frozen=True)
class Capabilities:
    """The subset of FEATURES a target can express natively."""

    supported: frozenset[str] = field(default_factory=lambda: frozenset(FEATURES))

    def missing(self, used: set[str]) -> set[str]:
        """The features in `used` this target cannot express."""
        return used - self.supported


class Backend(ABC):
    """One target. Subclasses set the class attributes and implement `emit`."""

    name: ClassVar[str]
    description: ClassVar[str]
    extra: ClassVar[str | None] = None
    capabilities: ClassVar[Capabilities] = Capabilities()
    notes: ClassVar[dict[str, str]] = {}
    """Feature -> how the target honors it only in part (shown by `pipec targets`)."""
    settings_model: ClassVar[type[TargetSettings]] = TargetSettings

    def __init__(self, project_root: Path | None = None) -> None:
        """`project_root` is the folder the pipeline's files are relative to (the driver passes
        the one it found); targets that run the user's code in place need it."""
        self.project_root = (project_root or Path.cwd()).resolve()

    def lower(self, pipeline: Pipeline, settings: TargetSettings) -> Pipeline:
        """Target-specific IR -> IR rewrites before emit; none by default."""
        return pipeline

    @abstractmethod
    def emit(self, pipeline: Pipeline, settings: TargetSettings) -> Bundle:
        """Produce the target's files for a validated pipeline."""

    def submit(
        self,
        pipeline: Pipeline,
        settings: TargetSettings,
        bundle: Bundle,
        params: dict[str, Any],
        wait: bool,
    ) -> int:
        """Hand the emitted files to the engine with the given parameter values; return the exit
        code (0 submitted or succeeded, 1 the run failed, 2 nothing could be sent)."""
        raise NoSubmitter(
            f"target {self.name!r} has no submitter: run `pipec compile REF --target {self.name}"
            " -o DIR` and hand the files to the engine"
        )


class NoSubmitter(Exception):
    """`pipec run` on a target that only compiles."""


def features_used(pipeline: Pipeline) -> dict[str, list[tuple[str, Any]]]:
    """Feature -> the (node id, location) pairs that use it, in written order."""
    used: dict[str, list[tuple[str, Any]]] = {}

    def add(feature: str, node_id: str, location: Any) -> None:
        used.setdefault(feature, []).append((node_id, location))

    env = graph.TypeEnv(pipeline)
    if pipeline.schedule:
        add("schedule", pipeline.id, pipeline.location)
    for node, _ in graph.walk(pipeline.body):
        match node:
            case Condition():
                add("condition", node.id, node.location)
            case Loop():
                kind = {Const: "loop_literal", ParamRef: "loop_param"}.get(type(node.items))
                add(kind or "loop_output", node.id, node.location)
                if node.parallelism:
                    add("loop_parallelism", node.id, node.location)
            case Group():
                add("nested", node.id, node.location)
            case Step():
                _step_features(node, env, add)
    return used


def _step_features(step: Step, env: graph.TypeEnv, add: Any) -> None:
    loc = step.location
    if step.after:
        add("after", step.id, loc)
    if step.retries:
        add("retries", step.id, loc)
    if step.timeout is not None:
        add("timeout", step.id, loc)
    if not step.cache:
        add("cache", step.id, loc)
    r = step.resources
    if r.cpu is not None or r.memory is not None:
        add("resources", step.id, loc)
    if r.disk is not None:
        add("disk", step.id, loc)
    if r.gpu:
        add("gpu", step.id, loc)
    if step.secrets:
        add("secrets", step.id, loc)
    if step.env:
        add("env", step.id, loc)
    if step.image:
        add("image", step.id, loc)
    for binding in step.args.values():
        if isinstance(binding, Collect):
            add("collect", step.id, loc)
        if isinstance(binding, OutputRef | Collect):
            source = env.of(binding)
            if source and "artifact[" in source:
                add("artifacts", step.id, loc)


def unsupported(pipeline: Pipeline, backend: type[Backend]) -> list[Diagnostic]:
    """One diagnostic per node that uses a feature the backend cannot express."""
    found: list[Diagnostic] = []
    used = features_used(pipeline)
    for feature in sorted(backend.capabilities.missing(set(used))):
        for node_id, location in used[feature]:
            found.append(
                Diagnostic(
                    code="U001",
                    message=f"target {backend.name!r} cannot express {FEATURES[feature]} "
                    f"(used by {node_id!r})",
                    hint=f"remove it from {node_id!r}, or compile for a target that supports it "
                    "(see `pipec targets`)",
                    location=location,
                )
            )
    return found
