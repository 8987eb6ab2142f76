"""`[tool.pipec.targets.airflow]`: the airflow target's settings (also `--set key=value`)."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from pipec.backends.settings import KubernetesSettings


class AirflowSettings(KubernetesSettings):
    """`[tool.pipec.targets.airflow]` settings (also `--set key=value`); each setting's docstring
    is what `pipec targets airflow` shows."""

    operator: Literal["kubernetes", "docker", "local"] = "kubernetes"
    """How steps run: `kubernetes` (KubernetesPodOperator), `docker` (DockerOperator) or `local`
    (a process on the worker, through the python interpreter given by `python`)."""
    artifact_root: str | None = None
    """Where step outputs live, `<root>/<dag_id>/<run folder>/<step>/<output>/`: a folder the
    workers (and containers) share, or an fsspec URL."""
    python: str = Field(default="python3", min_length=1)
    """The interpreter that runs the step runtime (in the image, or on the worker in `local`
    mode); it must have pipec and the steps' dependencies. In `local` mode with the project
    folder as code root it defaults to the interpreter that compiles the DAG."""
    code_root: str | None = None
    """The folder the step modules import from. In `local` mode it defaults to the project
    folder at compile time; elsewhere to the image's working directory."""
    secret_name: str = "pipec-secrets"
    """The Kubernetes Secret whose keys (named like the step's secrets) become the step's secret
    environment variables in `kubernetes` mode; in `docker` and `local` mode secrets come from
    Airflow Variables of the same names (any secrets backend)."""
    start_date: datetime.date = datetime.date(2024, 1, 1)
    """The DAG's fixed `start_date` (a schedule never back-fills: `catchup=False`)."""
    namespace: str | None = None
    """The Kubernetes namespace of the step pods (unset: the connection's)."""
    docker_url: str | None = None
    """The Docker daemon the `docker` operator talks to (unset: Airflow's default)."""
    dags_folder: str | None = None
    """Where `pipec run --target airflow` places the DAG file."""
    api_url: str = "http://127.0.0.1:8080"
    """The Airflow API server `pipec run` triggers runs through (`/api/v2`)."""
    run_timeout: float = Field(default=3600.0, gt=0)
    """Seconds `pipec run` waits for the DAG to appear and (`--wait`) the run to end; then it
    gives up watching (exit 1; a triggered run goes on)."""
    poll_interval: float = Field(default=2.0, gt=0)
    """Seconds between two looks at the API while waiting."""

    def resolved(self, project_root: Path) -> AirflowSettings:
        """The settings a DAG file is written with: in `local` mode the code root defaults to
        the project folder, and then `python` to the interpreter compiling it (it has pipec,
        and the DAG runs steps on this machine); `python3` otherwise."""
        if self.operator != "local":
            return self
        update: dict[str, str] = {}
        code_root = self.code_root or str(project_root)
        if self.code_root is None:
            update["code_root"] = code_root
        if "python" not in self.model_fields_set and Path(code_root).resolve() == project_root:
            update["python"] = sys.executable
        return self.model_copy(update=update) if update else self

    @field_validator("artifact_root")
    @classmethod
    def _root_is_jinja_free(cls, value: str | None) -> str | None:
        # Output paths are Jinja templates (they hold `{{ run_id }}`), so the root must not be
        # able to open a Jinja tag of its own.
        if value is not None and "{" in value:
            raise ValueError("must not contain '{' (output paths are Airflow templates)")
        return value
