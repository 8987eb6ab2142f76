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

from typing import ClassVar

from pipec.backends.airflow import checks, dag
from pipec.backends.airflow.settings import AirflowSettings
from pipec.backends.base import Backend, Bundle, Capabilities, Limits
from pipec.backends.settings import TargetSettings
from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import Pipeline


class AirflowBackend(Backend[AirflowSettings]):
    """Airflow 3 DAG files: tasks per step, branches for conditions, mapped task groups for
    loops, task groups for nested pipelines."""

    name: ClassVar[str] = "airflow"
    description: ClassVar[str] = (
        "Apache Airflow 3: one DAG file (Kubernetes, Docker or local tasks)"
    )
    extra: ClassVar[str | None] = None  # the submitter speaks plain HTTP to /api/v2
    capabilities: ClassVar[Capabilities] = Capabilities.all()
    notes: ClassVar[dict[str, str]] = {
        "loop_parallelism": "caps running instances of each task in the loop, not iterations",
        "disk": "reserved with operator=kubernetes; docker: U001; local: warning W004",
        "gpu": "a GPU type needs operator=kubernetes; local: not reserved (warning W004)",
        "resources": "not enforced with operator=local",
    }
    how: ClassVar[dict[str, str]] = {
        "cache": "by the step runtime, indexed in <artifact_root>/.pipec-cache/ (reuses "
        "earlier runs' outputs where they are)",
    }
    settings_model: ClassVar[type[TargetSettings]] = AirflowSettings
    submitter: ClassVar[str | None] = "pipec.backends.airflow.submit:submit"
    # A foreach is a mapped task group; Airflow maps at most `[core] max_map_length` items
    # (1024 unless the deployment raises it).
    limits: ClassVar[Limits] = Limits(loop_items=1024)

    def check(self, pipeline: Pipeline) -> list[Diagnostic]:
        """What this target (in the chosen operator mode) cannot express."""
        return checks.check(pipeline, self.settings, self.project_root)

    def emit(self, pipeline: Pipeline) -> Bundle:
        """`<dag_id>.py`: the DAG file, deterministic for a given pipeline and settings."""
        resolved = self.settings.resolved(self.project_root)
        return {f"{pipeline.id}.py": dag.render_dag(pipeline, resolved)}
