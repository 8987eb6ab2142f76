"""Helpers for the airflow target's tests: compile to a folder, and call tests/airflow_check.py
inside the Airflow tool environment with a scratch AIRFLOW_HOME (SQLite metadata database)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipec import driver
from pipec.backends.files import write_files
from tests.conftest import REPO, tool_python

CHECKER = REPO / "tests" / "airflow_check.py"
MARKER = "pipec-airflow-check: "  # the answer line's prefix (tests/airflow_check.py)


def compile_to(ref: str, out: Path, settings: Sequence[str] = ()) -> Path:
    """Compile REF for airflow into `out`; return the DAG file."""
    (path,) = write_files(driver.compile_ref(ref, "airflow", settings), out)
    return path


def local_settings(artifacts: Path, code_root: Path = REPO) -> list[str]:
    """Settings that run steps on this machine with the dev venv's python (it has pipec)."""
    return [
        "operator=local",
        f"artifact_root={artifacts}",
        f"python={sys.executable}",
        f"code_root={code_root}",
    ]


def inherited_env() -> dict[str, str]:
    """What an Airflow task's step process inherits from this machine (Airflow's own settings
    left out). A local reference run compared with an Airflow run must get the same: variables
    such as OPENBLAS_CORETYPE change the floats a fitted model holds."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}


def airflow_env(
    home: Path,
    dags: Path,
    extra: dict[str, str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """An environment for one Airflow process: its own home, SQLite database and DAGs folder, on
    top of `base` (default: this process's environment) without its Airflow settings."""
    home.mkdir(parents=True, exist_ok=True)
    env = inherited_env() if base is None else {
        k: v for k, v in base.items() if not k.startswith("AIRFLOW")
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
    )
    env.update(extra or {})
    return env


def check(command: Sequence[str], env: dict[str, str], timeout: float = 600) -> dict[str, Any]:
    """Run the checker script in the Airflow venv; return its JSON answer."""
    python = tool_python("airflow")
    done = subprocess.run(
        [str(python), str(CHECKER), *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    answers = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if done.returncode != 0 or not answers:
        raise AssertionError(f"airflow_check {command[0]} failed:\n{done.stderr[-6000:]}")
    answer: dict[str, Any] = json.loads(answers[-1][len(MARKER) :])
    if "errors" in answer and answer["errors"] and command[0] == "run":
        raise AssertionError(f"the DAG did not import: {answer['errors']}")
    return answer


def run_dag(dag_file: Path, conf: Mapping[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """`dag.test()` of the DAG in `dag_file` (its id is the file's stem) with `conf`; the answer
    of the checker's `run`. A run that does not succeed is an AssertionError holding the task
    states and the end of Airflow's log, so a failure says which step failed and why."""
    command = [str(CHECKER), "run", str(dag_file), dag_file.stem, json.dumps(dict(conf))]
    done = subprocess.run(
        [str(tool_python("airflow")), *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    answers = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    answer: dict[str, Any] = json.loads(answers[-1][len(MARKER) :]) if answers else {}
    if done.returncode != 0 or answer.get("errors") or answer.get("state") != "success":
        raise AssertionError(
            f"the DAG run of {dag_file.name} did not succeed: {answer}\n{done.stderr[-8000:]}"
        )
    return answer


def migrate(env: dict[str, str]) -> None:
    """Create the SQLite metadata database (dag.test() needs it)."""
    airflow = tool_python("airflow").parent / "airflow"
    done = subprocess.run(
        [str(airflow), "db", "migrate"], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]


def stored_outputs(run_dir: Path) -> dict[str, str]:
    """`step[/i]/output` -> content hash, for every output a run wrote under its run folder."""
    found: dict[str, str] = {}
    for meta in sorted(run_dir.rglob("meta.json")):
        key = meta.parent.relative_to(run_dir).as_posix()
        found[key] = json.loads(meta.read_text(encoding="utf-8"))["hash"]
    return found
