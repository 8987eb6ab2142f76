"""The `local` target: run a pipeline on this machine with nothing to set up.

`emit` writes `plan.json`, the executable plan (see `pipec.backends.runner.plan`); `run` executes
it with pipec's own scheduler (`pipec.backends.runner`) and the fork executor (`local.fork`):
artifacts on disk (or any fsspec URL) and run metadata in SQLite under the project's `.pipec/`
folder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from pipec.backends.base import Backend, Bundle, Capabilities, RunOptions, RunOutcome
from pipec.backends.runner import plan
from pipec.backends.settings import TargetSettings
from pipec.ir import quantity
from pipec.ir.model import Pipeline

if TYPE_CHECKING:
    from pipec.backends.runner.executor import Executor


class LocalSettings(TargetSettings):
    """`[tool.pipec.targets.local]` settings (also `--set key=value`)."""

    artifact_root: str | None = None
    """Where step outputs live: a folder (relative to the project root) or an fsspec URL
    (unset: the project's `.pipec/` folder)."""
    parallelism: int | None = Field(default=None, ge=1)
    """The most steps running at once (unset: the number of CPUs)."""
    cpus: float | None = Field(default=None, gt=0)
    """The machine's CPUs that steps' resource requests are checked against (unset: what the
    machine has)."""
    memory: str | None = None
    """The machine's memory that steps' requests are checked against, e.g. `8Gi` (unset: what
    the machine has)."""
    gpus: int | None = Field(default=None, ge=0)
    """The machine's GPUs, given to GPU steps as `CUDA_VISIBLE_DEVICES` indexes 0..gpus-1
    (unset: those an inherited `CUDA_VISIBLE_DEVICES` names, else those `nvidia-smi -L`
    lists, else none)."""
    image: str | None = None
    """Takes part in cache keys only, so that switching to a container target later does not
    reuse results computed elsewhere."""
    preload: bool = True
    """Preload, once per run, the libraries steps were seen to import (`local.preload`);
    `false` (or `PIPEC_PRELOAD=0`) makes every step import its own, for debugging."""

    @field_validator("memory")
    @classmethod
    def _memory_is_a_quantity(cls, value: str | None) -> str | None:
        if value is not None and not quantity.is_quantity(value):
            raise ValueError(f"{value!r} is not a quantity (e.g. 8Gi, 512Mi)")
        return value

    @field_validator("image")
    @classmethod
    def _image_is_named(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("is empty: name an image (e.g. python:3.12-slim) or leave it unset")
        return value


class LocalBackend(Backend[LocalSettings]):
    """Runs every step through the shared runtime in forked worker processes on this machine.

    A target that runs steps elsewhere through the same scheduler (e.g. `local_docker`) is this
    class with another `make_executor` and its own settings model.
    """

    name: ClassVar[str] = "local"
    description: ClassVar[str] = "this machine: artifacts on disk, run metadata in SQLite"
    capabilities: ClassVar[Capabilities] = Capabilities.all()
    notes: ClassVar[dict[str, str]] = {
        "gpu": "by count: each GPU step is given its own GPUs in CUDA_VISIBLE_DEVICES",
        "disk": "not reserved: steps share this machine's disk",
        "image": "part of the cache key only: steps run in pipec's own Python environment",
        "schedule": "kept in the IR only: `pipec run` runs once, now (use cron or an engine)",
    }
    settings_model: ClassVar[type[TargetSettings]] = LocalSettings

    def emit(self, pipeline: Pipeline) -> Bundle:
        """`plan.json`: the executable plan, deterministic for a given pipeline and settings."""
        return {"plan.json": plan.build(pipeline, self.settings).to_text()}

    def make_executor(self) -> Executor[Any]:
        """What starts each step attempt: a fork of this process (see `local.fork`)."""
        from pipec.backends.local.fork import ForkExecutor

        return ForkExecutor(preload=self.settings.preload)

    def run(self, pipeline: Pipeline, params: dict[str, Any], options: RunOptions) -> RunOutcome:
        """Run here and wait for the end (`--wait` changes nothing)."""
        from pipec.backends.runner import runs  # SQLite, rich: only when running

        result = runs.run_plan(
            plan.build(pipeline, self.settings),
            params,
            self.project_root,
            self.make_executor(),
            no_cache=options.no_cache,
            parallelism=options.parallelism,
            view=options.view,
            target=self.name,
        )
        return RunOutcome(result.exit_code, result)

    def resume(self, run_id: str, options: RunOptions) -> RunOutcome:
        """Continue run `run_id` of this project: finished steps are kept; the run's own options
        apply (`--no-cache` adds to them, `--parallelism` replaces the run's)."""
        from pipec.backends.runner import runs

        result = runs.resume_run(
            run_id,
            self.project_root,
            self.make_executor(),
            no_cache=options.no_cache,
            parallelism=options.parallelism,
            view=options.view,
            target=self.name,
        )
        return RunOutcome(result.exit_code, result)
