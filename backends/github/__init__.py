"""The `github` target: one GitHub Actions workflow per pipeline, run here with act or dispatched.

`emit` writes `.github/workflows/<pipeline>.yml` (`-o .` puts it in a repository): one job per
step (`jobs`), values as job outputs and artifacts in the store (`layout`), conditions as job
`if:` (`expressions`), foreach as a matrix, parameters as typed inputs (`workflow`). Every job
runs the shared step runtime through `pipec.backends.github.job`, which adds the loop inputs GitHub
lacks; the step runtime itself keeps each step's retries and timeout (`--retries`, `--timeout`).

`pipec run --target github --set via=act` runs the workflow on this machine with act's host mode
and prints the local target's summary (`act_run`); without `via` it dispatches the workflow
through GitHub's REST API (`submit`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pipec.backends.base import Backend, Bundle, Capabilities, Limits, RunOptions, RunOutcome
from pipec.backends.github import checks, workflow
from pipec.backends.github.job_io import MATRIX_LIMIT
from pipec.backends.github.settings import GithubSettings
from pipec.backends.settings import TargetSettings
from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import Pipeline


class GithubBackend(Backend[GithubSettings]):
    """GitHub Actions: a job per step, `needs` from the data flow, matrices for foreach."""

    name: ClassVar[str] = "github"
    description: ClassVar[str] = "GitHub Actions: one workflow file (run here with act)"
    extra: ClassVar[str | None] = "github"
    capabilities: ClassVar[Capabilities] = Capabilities(
        frozenset(
            {
                "condition",
                "loop_literal",
                "loop_param",
                "loop_output",
                "loop_parallelism",
                "collect",
                "nested",
                "after",
                "retries",
                "timeout",
                "cache",
                "resources",
                "disk",
                "gpu",
                "secrets",
                "env",
                "image",
                "schedule",
                "artifacts",
            }
        )
    )
    notes: ClassVar[dict[str, str]] = {
        # A foreach inside a foreach is flattened (`<loop>-iterations`) and a when inside a
        # foreach decided by each iteration's job; these shapes are still U001:
        "collect": "a foreach over a collect() is U001 (loop over a step that returns the list)",
        "condition": "a foreach inside a when inside a foreach is U001",
        "resources": "not enforced: pick a runner with `runners`",
        "disk": "not enforced: pick a runner with `runners`",
        "gpu": "needs a GPU runner label in `runners`",
        "image": "as the job's container:, not with via=act",
    }
    how: ClassVar[dict[str, str]] = {
        "loop_parallelism": "max-parallel; in a foreach inside a foreach, over all its "
        "iterations at once (one matrix)",
        "cache": "by the step runtime, indexed in <artifact_root>/.pipec-cache/ "
        "(artifacts=github keeps nothing across runs: every job runs)",
    }
    settings_model: ClassVar[type[TargetSettings]] = GithubSettings
    # A job costs a runner, a checkout and an interpreter start (tens of seconds on GitHub):
    # chains of small steps run as one job unless `fuse=false`.
    fuse_by_default: ClassVar[bool] = True
    # One matrix expands at most 256 jobs: longer literal foreach lists are split into parts.
    limits: ClassVar[Limits] = Limits(loop_items=MATRIX_LIMIT)

    def check(self, pipeline: Pipeline) -> list[Diagnostic]:
        """What GitHub Actions cannot express (see `checks`)."""
        return checks.check(pipeline, self.settings)

    def emit(self, pipeline: Pipeline) -> Bundle:
        """`.github/workflows/<pipeline>.yml`, deterministic for a pipeline and settings (with
        `via=act`: the workflow act runs on this machine, see `act_run.act_settings`)."""
        settings = self.settings
        if settings.via == "act":
            from pipec.backends.github.act_run import act_settings

            settings = act_settings(settings, self.project_root)
        return {workflow.path(pipeline): workflow.render(pipeline, settings)}

    def run(self, pipeline: Pipeline, params: dict[str, Any], options: RunOptions) -> RunOutcome:
        """`via=act`: run here with act; otherwise dispatch on GitHub (see the module doc)."""
        if self.settings.via == "act":
            from pipec.backends.github import act_run

            return act_run.run(self, pipeline, params, options)
        return super().run(pipeline, params, options)

    submitter: ClassVar[str | None] = "pipec.backends.github.submit:submit"
