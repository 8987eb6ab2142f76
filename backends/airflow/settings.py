"""`[tool.pipec.targets.airflow]`: the airflow target's settings (also `--set key=value`)."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from pipec.backends.settings import KubernetesSettings


class AirflowSettings(KubernetesSettings):
    """`[tool.pipec.targets.airflow]` settings (also `--set key=value`).

    Attributes:
        operator: how steps run: `kubernetes`, `docker` or `local` (see the module docstring).
        image: the default step image (container operators); a step's own image wins.
        artifact_root: where step outputs live, `<root>/<dag_id>/<run folder>/<step>/<output>/`
            (`paths`); a folder the workers (and containers) share, or an fsspec URL.
        python: the interpreter that runs `-m pipec.backends.runtime` (in the image, or on the
            worker in `local` mode); it must have pipec and the step's dependencies installed.
            In `local` mode with the project folder as code root it defaults to the interpreter
            that compiles the DAG, and a chosen one is checked to import pipec at compile time.
        code_root: the folder the step modules import from (`--code-root`). In `local` mode it
            defaults to the project folder at compile time; container images usually set their
            working directory instead, so there it defaults to none.
        start_date: the DAG's fixed `start_date` (a schedule never back-fills: `catchup=False`).
        namespace: Kubernetes namespace of the step pods (default: the connection's).
        secret_name: the Kubernetes Secret whose keys (named like the step's secrets) become
            the step's secret environment variables in `kubernetes` mode. In `docker` and `local`
            mode secrets come from Airflow Variables of the same names (any secrets backend).
        gpu_resource, gpu_node_label, gpu_toleration: how a GPU step's pod asks for GPUs and
            lands on GPU nodes in `kubernetes` mode. These and `secret_name` are the settings of
            every Kubernetes target (`KubernetesSettings`), with the same names and defaults, so
            one pipeline's pods look the same under kubeflow and airflow (`common.k8s`).
        docker_url: the Docker daemon the `docker` operator talks to (default: Airflow's).
        dags_folder: where `pipec run --target airflow` places the DAG file.
        api_url: the Airflow API server `pipec run` triggers runs through (`/api/v2`).
        run_timeout: seconds `pipec run` waits for the DAG to appear and (`--wait`) the run to
            end; then it gives up watching (exit 1; a triggered run goes on).
        poll_interval: seconds between two looks at the API while waiting.
    """

    operator: Literal["kubernetes", "docker", "local"] = "kubernetes"
    start_date: datetime.date = datetime.date(2024, 1, 1)
    namespace: str | None = None
    docker_url: str | None = None
    dags_folder: str | None = None
    api_url: str = "http://127.0.0.1:8080"
    run_timeout: float = Field(default=3600.0, gt=0)
    poll_interval: float = Field(default=2.0, gt=0)

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
