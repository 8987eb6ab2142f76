"""The `airflow` target's adapters, one per operator mode (kubernetes, docker, local).

Checked with Airflow itself in the Airflow tool environment (tests/airflow_check.py): DagBag
imports every file with zero errors, and Airflow renders each task's templates (the DAG's default
params, a fixed run id), which gives each step's command line and env as the operator starts it;
for `kubernetes` the kubelet's expansion is applied on top. `local` mode runs here with
`dag.test()` against a SQLite database made once per test session; the other modes need a
cluster or a Docker image with the project, which the suite does not provide yet.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipec import driver, loader
from pipec.backends.airflow.paths import run_folder
from pipec.backends.base import Bundle
from pipec.backends.files import write_files
from pipec.backends.runtime.invocation import InvocationError, parse
from tests.airflow_helpers import airflow_env, check, migrate, run_dag
from tests.conformance import kubelet
from tests.conformance.adapters.local import steps_as_written
from tests.conformance.harness import Harness, NoEngineHere, Outputs, RunFailed, Seen, StepView
from tests.conformance.outputs import stored_outputs

IMAGE = "ghcr.io/acme/pipec-conformance:0.1"  # compiles only: never pulled
MODE_SETTINGS = {
    "kubernetes": (f"image={IMAGE}", "artifact_root=s3://pipec-artifacts/conformance"),
    "docker": (f"image={IMAGE}", "artifact_root=/srv/pipec-artifacts"),
    # Portable paths: a run replaces them with this machine's (python, code_root, artifact_root).
    "local": ("artifact_root=/srv/pipec-artifacts", "python=python3", "code_root=/opt/project"),
}
NOT_HERE = {
    "kubernetes": "no Kubernetes cluster here (a stand-in comes with the kubernetes target)",
    "docker": "DockerOperator runs need an image with the project; not wired into the suite yet",
}


def _scratch(prefix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def render(bundles: Mapping[str, Bundle]) -> dict[str, dict[str, Any]]:
    """Label -> the one DAG of that bundle as Airflow renders it (see tests/airflow_check.py);
    AssertionError when a file does not import. One Airflow process, one DagBag per bundle."""
    with tempfile.TemporaryDirectory(prefix="pipec-dags-") as scratch:
        folders = {label: Path(scratch) / "dags" / str(n) for n, label in enumerate(bundles)}
        for label, folder in folders.items():
            write_files(bundles[label], folder)
        answer = check(
            ["render", *(str(f) for f in folders.values())],
            airflow_env(Path(scratch) / "home", Path(scratch) / "dags"),
        )
    found: dict[str, dict[str, Any]] = {}
    for label, folder in folders.items():
        result = answer[str(folder)]
        if result["errors"]:
            raise AssertionError(f"{label}: Airflow could not import it: {result['errors']}")
        (found[label],) = result["dags"].values()
    return found


class AirflowHarness:
    """Airflow with one operator mode."""

    target = "airflow"

    def __init__(self, operator: str) -> None:
        self.operator = operator
        self.id = f"airflow-{operator}"
        self.settings: tuple[str, ...] = (f"operator={operator}", *MODE_SETTINGS[operator])
        self.needs_image = operator != "local"
        self._engine: tuple[Path, dict[str, str]] | None = None

    def compile(self, ref: str, extra: Sequence[str] = ()) -> Bundle:
        return driver.compile_ref(ref, self.target, [*self.settings, *extra])

    def _view(self, call: Mapping[str, Any]) -> StepView:
        pairs = [(name, value) for name, value in call["env"]]
        if self.operator == "kubernetes":
            return StepView(call["argv"], kubelet.container_env(pairs))
        # Docker and the local helper hand env values to the process as they are.
        return StepView(call["argv"], dict(pairs))

    def steps(self, bundle: Bundle) -> dict[str, StepView]:
        dag = render({"bundle": bundle})["bundle"]
        return {task: self._view(call) for task, call in dag["steps"].items()}

    def validate(self, bundles: Mapping[str, Bundle]) -> dict[str, Seen]:
        seen: dict[str, Seen] = {}
        for label, dag in render(bundles).items():
            for task, call in dag["steps"].items():
                try:
                    parse(call["argv"])  # the runtime accepts the command line Airflow renders
                except InvocationError as exc:
                    raise AssertionError(f"{label}: task {task!r}: {exc}") from None
            seen[label] = Seen(dag["params"])
        return seen

    def step_env(self, base: Mapping[str, str]) -> dict[str, str]:
        if self.operator != "local":
            raise NoEngineHere(NOT_HERE[self.operator])
        # The local helper starts a step with the worker's environment; Airflow's own variables
        # (AIRFLOW_*) are the engine's and are left out on both sides.
        return {k: v for k, v in base.items() if not k.startswith("AIRFLOW")}

    def _airflow(self, base: Mapping[str, str]) -> tuple[Path, dict[str, str]]:
        """One Airflow home and SQLite database for the session (migrated once)."""
        if self._engine is None:
            folder = _scratch("pipec-airflow-")
            env = airflow_env(folder / "home", folder / "dags", base=base)
            migrate(env)
            self._engine = folder, env
        return self._engine

    def run(
        self,
        ref: str,
        params: Mapping[str, Any],
        workdir: Path,
        env: Mapping[str, str],
        secrets: Mapping[str, str],
        *,
        optimize: bool = True,
    ) -> Outputs:
        if self.operator != "local":
            raise NoEngineHere(NOT_HERE[self.operator])
        folder, _ = self._airflow(env)
        dags = workdir / "dags"
        artifacts = workdir / "artifacts"
        run_env = airflow_env(folder / "home", dags, base=env)
        run_env.update({f"AIRFLOW_VAR_{name}": value for name, value in secrets.items()})
        settings = [
            *self.settings,
            f"artifact_root={artifacts}",
            f"python={sys.executable}",
            f"code_root={loader.project_root(Path(ref).parent)}",
        ]
        (dag_file,) = write_files(
            driver.prepare(ref, self.target, settings, optimize=optimize).emit(), dags
        )
        try:
            result = run_dag(dag_file, params, run_env)
        except AssertionError as exc:
            raise RunFailed(str(exc)) from None
        # Airflow's steps store under <root>/<dag_id>/<run folder> (backends/airflow/paths.py).
        outputs = stored_outputs(artifacts / dag_file.stem / run_folder(result["run_id"]))
        return steps_as_written(outputs, ref, self.target, settings, optimize)


ADAPTERS: list[Harness] = [AirflowHarness(mode) for mode in ("kubernetes", "docker", "local")]
