"""`[tool.pipec.targets.github]`: the github target's settings (also `--set key=value`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from pipec.backends.settings import ContainerSettings

RUNNER_KEYS = ("default", "gpu")
"""`runners` keys besides `gpu:<type>`: the runner of every CPU step, and of GPU steps."""


class GithubSettings(ContainerSettings):
    """`[tool.pipec.targets.github]` settings (also `--set key=value`).

    Attributes:
        image: the default `container:` of every job (None: steps run on the runner itself); a
            step's own image wins.
        artifact_root: where step outputs live, `<root>/<run_id>/<step>/<output>/`: a folder
            every runner can reach (self-hosted runners) or an fsspec URL. Required; `pipec run
            --set via=act` defaults it to the project's `.pipec/` folder.
        python: the interpreter that runs the step runtime on the runner (or in the image); it
            must have pipec and the steps' dependencies installed (see `setup`).
        code_root: the folder the step modules import from. None: the job's working directory,
            which is the repository checked out by `checkout`.
        checkout: start every job with actions/checkout (pinned), so the project's code is the
            working directory. `via=act` turns it off (act cannot fetch actions offline, and its
            host mode has no checkout) and points `code_root` at the project instead.
        containers: write `container:` for steps with an image. `via=act` turns it off: act's
            host mode runs every job on this machine (like the local target, images unused).
        setup: shell commands run before each step's runtime (install pipec and the project's
            dependencies, e.g. `pip install -e .`); written verbatim into the workflow, never
            templated.
        runners: `runs-on` labels per kind of step: `default` (every CPU step, default
            `ubuntu-latest`), `gpu` (GPU steps), `gpu:<type>` (GPU steps of one `gpu_type`).
            With no GPU entry a GPU step is a diagnostic, never a silently CPU-only job.
        artifacts: `store` (outputs in `artifact_root`) or `github` (artifact outputs through
            actions/upload-artifact and download-artifact v4; values still as job outputs).
        repository: `owner/name` that `pipec run` dispatches the workflow in (REST API).
        ref: the branch or tag the dispatched run uses (the workflow file must be there).
        api_url: the GitHub REST API (GitHub Enterprise has its own).
        via: `act` runs the workflow here with act (host mode) instead of dispatching it.
        act: the act executable (default: `act` beside the interpreter, then on PATH).
        run_timeout: seconds `pipec run --wait` follows a dispatched run.
        concurrency: the workflow's concurrency group; runs of one pipeline on one ref queue.
    """

    checkout: bool = True
    containers: bool = True
    setup: str | None = None
    runners: dict[str, str | list[str]] = Field(default_factory=dict)
    artifacts: Literal["store", "github"] = "store"
    repository: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    ref: str = "main"
    api_url: str = "https://api.github.com"
    via: Literal["act"] | None = None
    act: str | None = None
    run_timeout: float = Field(default=3600.0, gt=0)
    concurrency: str = "pipec-${{ github.workflow }}-${{ github.ref }}"

    @field_validator("artifact_root", "code_root", "python", "image", "setup")
    @classmethod
    def _no_expressions(cls, value: str | None) -> str | None:
        # These are written into the workflow as they are: they must not open an expression.
        if value is not None and "${{" in value:
            raise ValueError("must not contain '${{' (it would be a GitHub expression)")
        return value

    @field_validator("runners")
    @classmethod
    def _runner_keys(cls, value: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        for key, labels in value.items():
            if key not in RUNNER_KEYS and not key.startswith("gpu:"):
                raise ValueError(f"unknown key {key!r}: use default, gpu or gpu:<gpu_type>")
            if not labels or "${{" in str(labels):
                raise ValueError(f"{key}: give one or more runner labels (no expressions)")
        return value

    def runner_for(self, gpu: int | None, gpu_type: str | None) -> str | list[str] | None:
        """The `runs-on` of a step (None: a GPU step with no GPU runner configured)."""
        if not gpu:
            return self.runners.get("default", "ubuntu-latest")
        if gpu_type and f"gpu:{gpu_type}" in self.runners:
            return self.runners[f"gpu:{gpu_type}"]
        return self.runners.get("gpu")
