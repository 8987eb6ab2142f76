"""End to end: `submit` against a real Airflow 3 (api-server, scheduler with the LocalExecutor and
dag-processor on 127.0.0.1, SQLite metadata database), running steps in `local` mode.

The DAG file is placed in the DAGs folder, the run is triggered through `/api/v2`, and `--wait`
follows it: a good run exits 0 with its outputs written (a hostile parameter value arrives
verbatim), a failing step makes `pipec run --target airflow --wait` exit 1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipec.backends.airflow.paths import run_folder
from tests.airflow_helpers import airflow_env, local_settings, migrate
from tests.conftest import REPO, tool_python
from tests.helpers import prepared, write_pipeline

pytestmark = pytest.mark.slow

STARTUP_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Airflow:
    """A running Airflow: its API URL, DAGs folder and artifact root."""

    url: str
    dags: Path
    artifacts: Path


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    base = tmp_path_factory.mktemp("airflow-e2e")
    dags = base / "dags"
    dags.mkdir()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = airflow_env(
        base / "home",
        dags,
        {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API_AUTH__JWT_SECRET": "pipec-test-only",
            "AIRFLOW__API__SECRET_KEY": "pipec-test-only",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
            # Notice new files within seconds (the defaults are minutes).
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "PATH": f"{tool_python('airflow').parent}:{os.environ.get('PATH', '')}",
        },
    )
    migrate(env)
    airflow_bin = str(tool_python("airflow").parent / "airflow")
    commands = [
        [airflow_bin, "api-server", "--host", "127.0.0.1", "--port", str(port)],
        [airflow_bin, "scheduler"],
        [airflow_bin, "dag-processor"],
    ]
    processes: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        for command in commands:
            log = (base / f"{command[1]}.log").open("wb")
            logs.append(log)
            processes.append(
                subprocess.Popen(
                    command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
        _wait_healthy(url, base)
        yield Airflow(url, dags, base / "artifacts")
    finally:
        for process in processes:
            _stop(process)
        for log in logs:
            log.close()


def _wait_healthy(url: str, base: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as answer:
                health = json.loads(answer.read())
            if all(health[c]["status"] == "healthy" for c in ("scheduler", "dag_processor")):
                return
        except OSError:
            pass
        time.sleep(1)
    logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in base.glob("*.log"))
    raise AssertionError(f"Airflow did not become healthy:\n{logs}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a component and the workers it started (its own process group)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)
    except ProcessLookupError:
        pass


def _settings(airflow: Airflow, code_root: Path) -> list[str]:
    return [
        *local_settings(airflow.artifacts, code_root),
        f"dags_folder={airflow.dags}",
        f"api_url={airflow.url}",
        "run_timeout=240",
    ]


def _submit(airflow: Airflow, ref: str, params: dict[str, Any], code_root: Path = REPO) -> int:
    settings = _settings(airflow, code_root)
    pipeline, _, backend = prepared(ref, "airflow", settings)
    bundle = backend.emit(pipeline)
    code: int = backend.submit(pipeline, bundle, params, True)
    return code


def test_a_submitted_run_succeeds_with_verbatim_values(
    airflow: Airflow, capsys: pytest.CaptureFixture[str]
) -> None:
    value = 'x"; $(id) {{ 7 * 7 }}'
    assert _submit(airflow, str(REPO / "examples/hello.py"), {"name": value}) == 0
    run_id = capsys.readouterr().out.strip().splitlines()[-1]
    shout = airflow.artifacts / "hello" / run_folder(run_id) / "shout" / "output" / "value.json"
    assert json.loads(shout.read_text(encoding="utf-8")) == f"Hello, {value}!".upper()


def test_a_failing_step_makes_the_submitter_exit_1(airflow: Airflow, tmp_path: Path) -> None:
    path = write_pipeline(
        tmp_path,
        """
        @step
        def explode() -> int:
            raise RuntimeError("boom")

        @pipeline
        def failing() -> None:
            explode()
        """,
    )
    # Through the command line this time: `pipec run --target airflow --wait`.
    command = [sys.executable, "-m", "pipec.cli", "run", str(path), "--target", "airflow"]
    command += ["--wait"]
    for item in _settings(airflow, tmp_path):
        command += ["--set", item]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1, done.stderr
    assert "run manual__" in done.stderr and ": failed" in done.stderr
