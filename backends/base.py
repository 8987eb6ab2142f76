"""What every target backend is: its capabilities, settings, checks, lowerings, emit, and run.

A backend states only what it adds or does differently. It is generic over its settings model,
and an instance is configured for one compile (`Backend(settings, project_root)`). Shared
decisions live outside the targets: which features a pipeline uses and the U001 wording (here and
in `diagnostics`), settings (`settings`), the runtime command line (`runtime.invocation`), pod
rendering (`common.k8s`), the submit path (`common.submit`).

Running: a target either drives its steps itself (`run` is overridden, e.g. `local`) or hands the
emitted files to its engine through `submitter`, a "module:function" imported only when used, so
compiling never imports a target's SDK or HTTP client.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, assert_never

from pipec.backends.diagnostics import unsupported_feature
from pipec.backends.settings import TargetSettings
from pipec.ir import graph, types
from pipec.ir.diagnostics import Diagnostic, InvalidInput
from pipec.ir.model import (
    Collect,
    Condition,
    Const,
    Group,
    Location,
    Loop,
    OutputRef,
    ParamRef,
    Pipeline,
    Step,
)
from pipec.ir.passes import Pass

if TYPE_CHECKING:
    from pipec.backends.runner.results import RunResult

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

S = TypeVar("S", bound=TargetSettings)


@dataclass(frozen=True)
class Capabilities:
    """The subset of FEATURES a target can express. Every target states its own: there is no
    default, so a new target cannot claim a feature by forgetting to say."""

    supported: frozenset[str]

    def __post_init__(self) -> None:
        unknown = sorted(self.supported - set(FEATURES))
        if unknown:
            raise ValueError(f"unknown features: {', '.join(unknown)}")

    @classmethod
    def all(cls) -> Capabilities:
        """Every feature (a target that can express everything says so explicitly)."""
        return cls(frozenset(FEATURES))

    def missing(self, used: set[str]) -> set[str]:
        """The features in `used` this target cannot express."""
        return used - self.supported


@dataclass(frozen=True)
class Limits:
    """What one engine cannot hold, as the engine documents it; None = no known limit.

    `loop_items`: iterations of one `foreach` (GitHub: 256 jobs per matrix; Airflow: the
    `max_map_length` of a mapped task, 1024 by default). `spec_bytes`: the size of one emitted
    file the engine keeps whole in one object (a Kubernetes object is at most 1.5 MiB, etcd's
    default request size, which bounds KFP's and Argo's workflow specs). The lowering
    `pipec.backends.lowerings.limits` splits what it can and reports the rest with the numbers.
    """

    loop_items: int | None = None
    spec_bytes: int | None = None


@dataclass(frozen=True)
class RunOptions:
    """How `pipec run` was asked to run. The options after `wait` apply to targets whose steps
    pipec drives itself; a target that hands its files to an engine refuses them."""

    wait: bool = False
    no_cache: bool = False
    parallelism: int | None = None
    view: str = "auto"
    json: bool = False


@dataclass(frozen=True)
class RunOutcome:
    """What `pipec run` reports: the exit code, and for targets pipec drives, the run itself."""

    exit_code: int
    result: RunResult | None = None


class NoSubmitter(InvalidInput):
    """`pipec run` on a target that only compiles."""


class Backend(ABC, Generic[S]):
    """One target, configured for one compile. Subclasses set the class attributes and
    implement `emit`."""

    name: ClassVar[str]
    description: ClassVar[str]
    extra: ClassVar[str | None] = None
    capabilities: ClassVar[Capabilities]
    notes: ClassVar[dict[str, str]] = {}
    """Feature -> how the target honors it only in part, or, for a feature it cannot express,
    why not (one line each, shown by `pipec targets`; every missing feature has one)."""
    how: ClassVar[dict[str, str]] = {}
    """Feature -> where a fully honored feature is kept when that is not the engine itself (e.g.
    the step runtime's cache): one line each, shown by `pipec targets` as `yes (N)`."""
    settings_model: ClassVar[type[TargetSettings]]
    lowerings: ClassVar[tuple[Pass, ...]] = ()
    """IR -> IR rewrites this target needs before `emit` (see `pipec.backends.lowerings`)."""
    submitter: ClassVar[str | None] = None
    """`module:function` that hands emitted files to the engine (see `submit`)."""
    fuse_by_default: ClassVar[bool] = False
    """Whether chains of steps run as one task when the `fuse` setting is not given: on where
    starting a task is expensive (a CI job, a pod), off where the UI shows one task per step."""
    limits: ClassVar[Limits] = Limits()
    """What the engine cannot hold (none known by default)."""
    builds_images: ClassVar[bool] = False
    """Whether the target builds the image from `base_image` itself before a run (local_docker),
    so its compile never reads `pipec.lock` (`pipec.backends.images.lock`)."""

    def __init__(self, settings: S, project_root: Path | None = None) -> None:
        """`project_root` is the folder the pipeline's files are relative to (the driver passes
        the one it found); targets that run the user's code in place need it."""
        self.settings = settings
        self.project_root = (project_root or Path.cwd()).resolve()

    @property
    def image_extras(self) -> tuple[str, ...]:
        """pipec's extras that code this target runs inside its images needs besides the step
        runtime (e.g. the kubernetes client of an in-cluster driver): `pipec build` installs
        them. None by default."""
        return ()

    @property
    def fuses(self) -> bool:
        """Whether this compile fuses chains: the `fuse` setting, else the target's default."""
        chosen: bool | None = self.settings.fuse
        return self.fuse_by_default if chosen is None else chosen

    def check(self, pipeline: Pipeline) -> list[Diagnostic]:
        """What this target cannot express beyond whole features (shapes, option combinations,
        missing settings), one diagnostic per problem; none by default."""
        return []

    @abstractmethod
    def emit(self, pipeline: Pipeline) -> Bundle:
        """Produce the target's files for a validated, lowered pipeline."""

    def run(self, pipeline: Pipeline, params: dict[str, Any], options: RunOptions) -> RunOutcome:
        """Run the pipeline with checked parameter values (only those the user gave).

        By default: emit, then hand the files to the engine through the submitter. Targets whose
        steps pipec drives itself override this."""
        refused = [
            flag
            for flag, given in (
                ("--no-cache", options.no_cache),
                ("--parallelism", options.parallelism is not None),
                ("--json", options.json),
            )
            if given
        ]
        if refused:
            raise NoSubmitter(
                f"{', '.join(refused)}: only for targets pipec runs itself; target {self.name!r} "
                "hands the run to its engine, which keeps its own run records"
            )
        return RunOutcome(self.submit(pipeline, self.emit(pipeline), params, options.wait))

    def resume(self, run_id: str, options: RunOptions) -> RunOutcome:
        """Continue an unfinished run (targets pipec drives itself)."""
        raise NoSubmitter(
            f"--resume applies to targets pipec runs itself; target {self.name!r} keeps its runs "
            "in its engine"
        )

    def submit(self, pipeline: Pipeline, bundle: Bundle, params: dict[str, Any], wait: bool) -> int:
        """Hand the emitted files to the engine with the given parameter values; return the exit
        code (0 submitted or succeeded, 1 the run failed, 2 nothing could be sent)."""
        if self.submitter is None:
            raise NoSubmitter(
                f"target {self.name!r} has no submitter: run `pipec compile REF --target "
                f"{self.name} -o DIR` and hand the files to the engine"
            )
        module_name, _, attr = self.submitter.partition(":")
        submit: Callable[..., int] = getattr(importlib.import_module(module_name), attr)
        return submit(self, pipeline, bundle, params, wait)


def features_used(pipeline: Pipeline) -> dict[str, list[tuple[str, Location]]]:
    """Feature -> the (node id, location) pairs that use it, in written order."""
    used: dict[str, list[tuple[str, Location]]] = {}

    def add(feature: str, node_id: str, location: Location) -> None:
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
                for feature in _step_features(node, env):
                    add(feature, node.id, node.location)
            case _:
                assert_never(node)
    return used


def _step_features(step: Step, env: graph.TypeEnv) -> list[str]:
    r = step.resources
    found = [
        feature
        for feature, used in (
            ("after", bool(step.after)),
            ("retries", bool(step.retries)),
            ("timeout", step.timeout is not None),
            ("cache", not step.cache),
            ("resources", r.cpu is not None or r.memory is not None),
            ("disk", r.disk is not None),
            ("gpu", bool(r.gpu)),
            ("secrets", bool(step.secrets)),
            ("env", bool(step.env)),
            ("image", bool(step.image)),
        )
        if used
    ]
    for binding in step.args.values():
        if isinstance(binding, Collect):
            found.append("collect")
        if isinstance(binding, OutputRef | Collect):
            produced = env.outputs.get((binding.step, binding.output))
            if produced and types.is_artifact(produced):
                found.append("artifacts")
    return found


def unsupported(pipeline: Pipeline, backend: type[Backend[Any]]) -> list[Diagnostic]:
    """One diagnostic per node that uses a feature the backend cannot express."""
    found: list[Diagnostic] = []
    used = features_used(pipeline)
    for feature in sorted(backend.capabilities.missing(set(used))):
        for node_id, location in used[feature]:
            found.append(
                unsupported_feature(
                    backend.name,
                    node_id,
                    location,
                    FEATURES[feature],
                    f"remove it from {node_id!r}, or compile for a target that supports it "
                    "(see `pipec targets`)",
                )
            )
    return found
