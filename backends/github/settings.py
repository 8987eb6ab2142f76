"""`[tool.pipec.targets.github]`: the github target's settings (also `--set key=value`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from pipec.backends.settings import ContainerSettings

RUNNER_KEYS = ("default", "gpu")
"""`runners` keys besides `gpu:<type>`: the runner of every CPU step, and of GPU steps."""


class GithubSettings(ContainerSettings):
    """`[tool.pipec.targets.github]` settings (also `--set key=value`); each setting's docstring
    is what `pipec targets github` shows."""

    image: str | None = None
    """The default `container:` of every job (unset: steps run on the runner itself); a step's
    own image wins."""
    artifact_root: str | None = None
    """Where step outputs live, `<root>/<run_id>/<step>/<output>/`: a folder every runner can
    reach (self-hosted runners) or an fsspec URL. Required; `via=act` defaults it to the
    project's `.pipec/` folder."""
    python: str = Field(default="python3", min_length=1)
    """The interpreter that runs the step runtime on the runner (or in the image); it must have
    pipec and the steps' dependencies installed (see `setup`)."""
    code_root: str | None = None
    """The folder the step modules import from (unset: the job's working directory, the
    repository checked out by `checkout`)."""
    checkout: bool = True
    """Start every job with actions/checkout (pinned). `via=act` turns it off (act cannot fetch
    actions offline) and points `code_root` at the project instead."""
    containers: bool = True
    """Write `container:` for steps with an image. `via=act` turns it off: act's host mode runs
    every job on this machine."""
    setup: str | None = None
    """Shell commands run before each step's runtime (e.g. `pip install -e .`); written verbatim
    into the workflow, never templated."""
    runners: dict[str, str | list[str]] = Field(default_factory=dict)
    """`runs-on` labels per kind of step: `default` (CPU steps; `ubuntu-latest` when unset), `gpu`
    (GPU steps), `gpu:<type>` (GPU steps of one `gpu_type`). A GPU step with no GPU runner is a
    diagnostic, never a silently CPU-only job."""
    artifacts: Literal["store", "github"] = "store"
    """`store` (outputs in `artifact_root`) or `github` (artifact outputs through
    actions/upload-artifact and download-artifact v4; values still as job outputs)."""
    repository: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    """`owner/name` that `pipec run` dispatches the workflow in (REST API)."""
    ref: str = "main"
    """The branch or tag a dispatched run uses (the workflow file must be there)."""
    api_url: str = "https://api.github.com"
    """The GitHub REST API (GitHub Enterprise has its own)."""
    via: Literal["act"] | None = None
    """`act` runs the workflow on this machine with act (host mode) instead of dispatching it."""
    act: str | None = None
    """The act executable (unset: `act` beside the interpreter, then on PATH)."""
    run_timeout: float = Field(default=3600.0, gt=0)
    """Seconds `pipec run --wait` follows a dispatched run."""
    concurrency: str = "pipec-${{ github.workflow }}-${{ github.ref }}"
    """The workflow's concurrency group: runs of one pipeline on one ref queue."""

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
