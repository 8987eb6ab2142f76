"""The `airflow` target: one self-contained Airflow 3 DAG file per pipeline, plus its submitter.

`emit` writes `<dag_id>.py` (see `pipec.backends.airflow.dag` for how the IR maps to tasks);
`submit` places that file in a DAGs folder and triggers a run through Airflow's REST API (see
`pipec.backends.airflow.submit`). The setting `operator` picks how a step runs:

* `kubernetes` (default): a KubernetesPodOperator per step, with resources, GPUs, node selectors
  and Kubernetes secrets;
* `docker`: a DockerOperator per step (a local artifact root is bind-mounted at the same path);
* `local`: the step runtime as a subprocess of the Airflow worker (tests, single machines).
"""

from __future__ import annotations

import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from pipec.backends.base import Backend, Bundle, Capabilities, ContainerSettings, TargetSettings
from pipec.ir.diagnostics import Diagnostic, DiagnosticError
from pipec.ir.model import Pipeline


class AirflowSettings(ContainerSettings):
    """`[tool.pipec.targets.airflow]` settings (also `--set key=value`).

    Attributes:
        operator: how steps run: `kubernetes`, `docker` or `local` (see the module docstring).
        image: the default step image (container operators); a step's own image wins.
        artifact_root: where step outputs live, `<root>/<run_id>/<step>/<output>/`; a folder the
            workers (and containers) share, or an fsspec URL.
        python: the interpreter that runs `-m pipec.backends.runtime` (in the image, or on the
            worker in `local` mode); it must have pipec and the step's dependencies installed.
        code_root: the folder the step modules import from (`--code-root`). In `local` mode it
            defaults to the project folder at compile time; container images usually set their
            working directory instead, so there it defaults to none.
        start_date: the DAG's fixed `start_date` (a schedule never back-fills: `catchup=False`).
        namespace: Kubernetes namespace of the step pods (default: the connection's).
        kubernetes_secret: the Kubernetes Secret whose keys (named like the step's secrets) become
            the step's secret environment variables in `kubernetes` mode. In `docker` and `local`
            mode secrets come from Airflow Variables of the same names (any secrets backend).
        gpu_resource: the extended resource a GPU request asks for.
        gpu_node_label: the node label a GPU type is matched against (`kubernetes` mode; the
            same setting and default as the kubeflow target, so one pipeline lands on the same
            nodes).
        docker_url: the Docker daemon the `docker` operator talks to (default: Airflow's).
        dags_folder: where `pipec run --target airflow` places the DAG file.
        api_url: the Airflow API server `pipec run` triggers runs through (`/api/v2`).
        run_timeout: seconds `pipec run --wait` waits for the DAG to appear and the run to end.
    """

    operator: Literal["kubernetes", "docker", "local"] = "kubernetes"
    python: str = Field(default="python3", min_length=1)
    code_root: str | None = None
    start_date: datetime.date = datetime.date(2024, 1, 1)
    namespace: str | None = None
    kubernetes_secret: str = "pipec-secrets"
    gpu_resource: str = "nvidia.com/gpu"
    gpu_node_label: str = "cloud.google.com/gke-accelerator"
    docker_url: str | None = None
    dags_folder: str | None = None
    api_url: str = "http://127.0.0.1:8080"
    run_timeout: float = Field(default=3600.0, gt=0)

    @field_validator("artifact_root")
    @classmethod
    def _root_is_jinja_free(cls, value: str | None) -> str | None:
        # Output paths are Jinja templates (they hold `{{ run_id }}`), so the root must not be
        # able to open a Jinja tag of its own.
        if value is not None and "{" in value:
            raise ValueError("must not contain '{' (output paths are Airflow templates)")
        return value


class AirflowBackend(Backend):
    """Airflow 3 DAG files: tasks per step, branches for conditions, mapped task groups for
    loops, task groups for nested pipelines."""

    name: ClassVar[str] = "airflow"
    description: ClassVar[str] = (
        "Apache Airflow 3: one DAG file (Kubernetes, Docker or local tasks)"
    )
    extra: ClassVar[str | None] = None  # the submitter speaks plain HTTP to /api/v2
    capabilities: ClassVar[Capabilities] = Capabilities()
    notes: ClassVar[dict[str, str]] = {
        "cache": "Airflow runs every task each time; cache=False holds, nothing is reused",
        "loop_parallelism": "caps running instances of each task in the loop, not iterations",
        "disk": "kubernetes operator only",
        "resources": "not enforced with operator=local",
    }
    settings_model: ClassVar[type[TargetSettings]] = AirflowSettings

    def lower(self, pipeline: Pipeline, settings: TargetSettings) -> Pipeline:
        """No rewrite; reports what this target (in the chosen operator mode) cannot express."""
        assert isinstance(settings, AirflowSettings)
        from pipec.backends.airflow import checks as airflow_checks

        problems = airflow_checks.check(pipeline, settings)
        if problems:
            raise DiagnosticError(problems)
        return pipeline

    def emit(self, pipeline: Pipeline, settings: TargetSettings) -> Bundle:
        """`<dag_id>.py`: the DAG file, deterministic for a given pipeline and settings."""
        assert isinstance(settings, AirflowSettings)
        from pipec.backends.airflow import dag as airflow_dag

        resolved = settings
        if settings.operator == "local" and settings.code_root is None:
            resolved = settings.model_copy(update={"code_root": str(self.project_root)})
        return {f"{pipeline.id}.py": airflow_dag.render_dag(pipeline, resolved)}

    def submit(
        self,
        pipeline: Pipeline,
        settings: TargetSettings,
        bundle: Bundle,
        params: dict[str, Any],
        wait: bool,
    ) -> int:
        """Place the DAG file, trigger a run with `params` as its conf; exit code (0 ok, 1 the
        run failed, 2 the request was refused)."""
        assert isinstance(settings, AirflowSettings)
        from pipec.backends.airflow import submit as airflow_submit

        return airflow_submit.submit(pipeline.id, settings, bundle, params, wait)


def diagnostic(node_id: str, location: Any, what: str, hint: str) -> Diagnostic:
    """One U001 diagnostic in the shared wording of unsupported features."""
    return Diagnostic(
        code="U001",
        message=f"target 'airflow' cannot express {what} (used by {node_id!r})",
        hint=hint,
        location=location,
    )
