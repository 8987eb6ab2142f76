"""The `local_docker` target: the local target with every step in its own container.

It is `LocalBackend` with a Docker executor (`executor.py`): the same scheduler, plan, cache,
metadata, resume and live view, so a run has everything a local run has, while each step runs in
the image it will have in production. Images (`images.py`): a step's `image`, else the `image`
setting, else one pipec builds from `base_image` (`pipec.backends.images`, shared with `pipec
build`) with its step runtime and the project's requirements, reused while those inputs do not
change; the project's code is mounted read-only at run time, so editing a step never rebuilds
(`code = "bake"` puts it in the image).

Compiling needs no Docker SDK; running imports it (`pipec.backends.images.engine`) and checks the
engine and every image before the run starts, so a missing engine or a bad image is one line and
nothing ran.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from pipec.backends.base import FEATURES, Bundle, Capabilities, RunOptions, RunOutcome
from pipec.backends.diagnostics import unsupported_feature
from pipec.backends.local import LocalBackend, LocalSettings
from pipec.backends.runner import plan as plans
from pipec.backends.runner.results import RunResult
from pipec.backends.settings import ContainerSettings, TargetSettings
from pipec.ir import graph
from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import Pipeline

if TYPE_CHECKING:
    from pipec.backends.images.engine import Engine
    from pipec.backends.local_docker.images import ImageSettings
    from pipec.backends.runner.executor import Executor


class LocalDockerSettings(LocalSettings, ContainerSettings):
    """`[tool.pipec.targets.local_docker]` settings (also `--set key=value`); `artifact_root`,
    `parallelism`, `cpus` and `memory` are the local target's (a local artifact root is mounted
    read-write at its own path)."""

    image: str | None = None
    """The image of steps without their own (unset: pipec builds one from `base_image`)."""
    code_root: str | None = None
    """Where step modules are imported from in the container (unset: the mounted project, or
    the baked code)."""
    python: str = Field(default="python3", min_length=1)
    """The interpreter in the images."""
    base_image: str | None = None
    """A local image with Python >= 3.11 that pipec builds the step image from (adding its step
    runtime and the requirements; no network inside the build)."""
    requirements: str | list[str] | None = None
    """What the built image installs besides pipec: a requirements file (relative to the
    project root), a list of requirements, or unset for the project's `[project] dependencies`."""
    code: Literal["mount", "bake"] = "mount"
    """`mount` (the project, read-only, at its own path: editing code never rebuilds) or `bake`
    (the code copied into the built image, for images to push)."""
    network: str | None = Field(default=None, min_length=1)
    """The containers' network (`none` cuts them off; unset: the engine's default)."""
    preload: bool = True
    """No effect here: every step attempt starts in a fresh container (the local target's
    import preloading needs a forking process)."""


@dataclass
class DockerRunResult(RunResult):
    """A run's result plus the images it used (built, with the time, or reused)."""

    images: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """`--json`: the local target's summary plus `images`."""
        return {**super().to_json(), "images": self.images}


class LocalDockerBackend(LocalBackend):
    """The local target's scheduler with each step attempt in its own container."""

    name: ClassVar[str] = "local_docker"
    description: ClassVar[str] = (
        "this machine's Docker engine: each step in its own container, run metadata in SQLite"
    )
    extra: ClassVar[str | None] = "local_docker"
    capabilities: ClassVar[Capabilities] = Capabilities(frozenset(FEATURES))
    notes: ClassVar[dict[str, str]] = {
        "resources": "cpu as the container's CPU weight (a share, not a cap); memory as a hard "
        "limit (outgrowing it: killed by the OOM killer)",
        "gpu": (
            "the GPUs assigned to the step (device IDs), through the engine's GPU runtime; a GPU "
            "model cannot be chosen"
        ),
        "image": "looked up on the local engine (never pulled); none: built from base_image",
        # As on `local`: the steps share this machine's disk. Docker could cap a container's
        # writable layer only on some storage drivers (--storage-opt), never reserve space.
        "disk": "not reserved: steps share this machine's disk, as on local",
    }
    settings_model: ClassVar[type[TargetSettings]] = LocalDockerSettings
    builds_images: ClassVar[bool] = True
    settings: LocalDockerSettings
    _connected: Engine | None = None

    def check(self, pipeline: Pipeline) -> list[Diagnostic]:
        """Docker picks GPUs by count only: a GPU model is U001, which `unsupported=warn` drops
        (the step keeps its GPU count; disk requests are not among the capabilities at all)."""
        return [
            unsupported_feature(
                self.name,
                step.id,
                step.location,
                "a GPU type (Docker requests GPUs by count only)",
                "drop gpu_type, or use a Kubernetes target",
                drop="gpu_type",
            )
            for step in graph.steps(pipeline)
            if step.resources.gpu_type is not None
        ]

    def emit(self, pipeline: Pipeline) -> Bundle:
        """`plan.json` and, when pipec builds the step image, its recipe under `image/`."""
        from pipec.backends.local_docker import images

        plan = plans.build(pipeline, self.settings)
        bundle = {"plan.json": plan.to_text()}
        if images.needs_build(plan, self._image_settings()):
            recipe = images.recipe_of(plan, self._image_settings(), self.project_root)
            bundle.update(recipe.files())
        return bundle

    def make_executor(self, resuming: str | None = None) -> Executor[Any]:
        """A Docker executor on this target's engine (for run `resuming`, when continuing one)."""
        from pipec.backends.local_docker.executor import ContainerOptions, DockerExecutor

        bake = self.settings.code == "bake"
        options = ContainerOptions(
            python=self.settings.python,
            network=self.settings.network,
            mount_code=not bake,
            workdir=None if not bake else self.settings.code_root or _baked_code(),
        )
        return DockerExecutor(self._engine(), options, resuming)

    def run(self, pipeline: Pipeline, params: dict[str, Any], options: RunOptions) -> RunOutcome:
        """Check the engine, make every image ready, then run like the local target."""
        from pipec.backends.local_docker import images
        from pipec.backends.runner import runs

        engine = self._engine()
        plan = plans.build(pipeline, self.settings)
        images.needs_build(plan, self._image_settings())
        engine.check_network(self.settings.network)
        self._check_gpus(plan)
        say = _say(options)
        ready, used = images.prepare(plan, self._image_settings(), engine, self.project_root, say)
        for use in used:
            say(use.line())
        result = runs.run_plan(
            ready,
            params,
            self.project_root,
            self.make_executor(),
            no_cache=options.no_cache,
            parallelism=options.parallelism,
            view=options.view,
            target=self.name,
        )
        return RunOutcome(result.exit_code, _with_images(result, [u.to_json() for u in used]))

    def resume(self, run_id: str, options: RunOptions) -> RunOutcome:
        """Continue run `run_id` (a run of this target: checked before the engine is asked):
        once the run is ours, its executor checks the run's images are still there and removes
        what a killed runner left of it."""
        from pipec.backends.runner import runs

        runs.resumable_on(self.name, run_id, runs.open_metadata(self.project_root))
        result = runs.resume_run(
            run_id,
            self.project_root,
            self.make_executor(resuming=run_id),
            no_cache=options.no_cache,
            parallelism=options.parallelism,
            view=options.view,
            target=self.name,
        )
        return RunOutcome(result.exit_code, result)

    # ------------------------------------------------------------------------------- helpers

    def _engine(self) -> Engine:
        engine = self._connected
        if engine is None:
            from pipec.backends.images.engine import connect

            engine = connect()
            self._connected = engine
        return engine

    def _image_settings(self) -> ImageSettings:
        from pipec.backends.local_docker.images import ImageSettings

        s = self.settings
        return ImageSettings(
            image=s.image,
            base_image=s.base_image,
            python=s.python,
            requirements=s.requirements,
            bake=s.code == "bake",
            code_root=s.code_root,
            network=s.network,
        )

    def _check_gpus(self, plan: plans.Plan) -> None:
        from pipec.backends.images.engine import EngineError

        wanting = sorted(s.id for s in plan.steps.values() if s.resources.gpu)
        if wanting and not self._engine().has_gpu_runtime():
            raise EngineError(
                f"step{'s' if len(wanting) > 1 else ''} {', '.join(wanting)} "
                f"{'ask' if len(wanting) > 1 else 'asks'} for GPUs, but "
                "this Docker engine has no GPU runtime: install the NVIDIA Container Toolkit "
                "(nvidia-ctk runtime configure --runtime=docker) and restart the engine"
            )


def _baked_code() -> str:
    from pipec.backends.images.build import CODE

    return CODE


def _say(options: RunOptions) -> Any:
    def say(line: str) -> None:
        if options.view != "quiet":
            print(line, file=sys.stderr, flush=True)

    return say


def _with_images(result: RunResult, used: list[dict[str, Any]]) -> DockerRunResult:
    given = {f.name: getattr(result, f.name) for f in fields(RunResult)}
    return DockerRunResult(**given, images=used)
