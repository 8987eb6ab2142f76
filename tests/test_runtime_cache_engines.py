"""The runtime's step cache where the engine has none, run the way each engine runs the runtime:

* airflow: `dag.test()` of the compiled DAG (operator=local) twice on one artifact_root;
* github: `pipec run --target github --set via=act` twice on one artifact_root (act's host mode
  runs the workflow's `run:` lines as written);
* kubernetes (driver=cluster): the compiled plan's step command lines, rendered by the scheduler
  the in-cluster driver runs (pipec's own, with no cache of its own: `no_cache`, as a driver that
  starts with an empty metadata store), each step in a forked worker calling the runtime's
  `main` with those arguments (a Job's container runs the same arguments; the Job itself is
  tests/test_kubernetes_run.py's business).

Each pipeline appends a line per step execution to a file named by a parameter, so the second run
shows which steps' user code ran: the cached ones do not, cache=False ones do.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipec import driver
from pipec.backends.airflow.paths import run_folder
from pipec.backends.local.fork import ForkExecutor
from pipec.backends.runner import runs
from pipec.backends.runtime import cache, store
from tests.airflow_helpers import airflow_env, compile_to, local_settings, migrate, run_dag
from tests.conftest import REPO
from tests.helpers import write_pipeline

PIPELINE = """
    import os

    def _mark(marks: str, what: str) -> None:
        with open(marks, "a") as handle:
            handle.write(what + "\\n")

    @step
    def base(n: int, marks: str) -> int:
        _mark(marks, "base")
        return n * 10

    @step
    def plus(x: int, marks: str) -> int:
        _mark(marks, "plus")
        return x + 1

    @step(cache=False)
    def always(x: int, marks: str) -> int:
        _mark(marks, "always")
        return x

    @pipeline
    def cached_flow(n: int = 2, marks: str = "") -> None:
        b = base(n=n, marks=marks)
        plus(x=b, marks=marks)
        always(x=b, marks=marks)
"""


def executions(marks: Path) -> list[str]:
    return sorted(marks.read_text().split()) if marks.exists() else []


@pytest.mark.slow
def test_airflow_dag_test_twice_reuses_the_cached_steps(tmp_path: Path) -> None:
    source = write_pipeline(tmp_path, PIPELINE)
    marks, artifacts, dags = tmp_path / "marks", tmp_path / "artifacts", tmp_path / "dags"
    dags.mkdir()
    env = airflow_env(tmp_path / "home", dags)
    migrate(env)
    settings = local_settings(artifacts, code_root=tmp_path)
    dag_file = compile_to(f"{source}:cached_flow", dags, settings)
    conf = {"n": 2, "marks": str(marks)}
    first = run_dag(dag_file, conf, env)
    assert executions(marks) == ["always", "base", "plus"]
    second = run_dag(dag_file, conf, env)
    assert second["tasks"]["plus"] == ["success"]
    assert executions(marks) == ["always", "always", "base", "plus"]  # base, plus reused
    folders = [artifacts / dag_file.stem / run_folder(r["run_id"]) for r in (first, second)]
    for step_id in ("base", "plus", "always"):
        a, b = (str(f / step_id / "output") for f in folders)
        assert store.read_meta(b) == store.read_meta(a)  # this run's folder holds the output
    assert store.read(str(folders[1] / "plus" / "output")) == 21
    third = run_dag(dag_file, {**conf, "n": 3}, env)  # a parameter changed: both run again
    assert executions(marks).count("base") == 2 and executions(marks).count("plus") == 2
    assert (
        store.read(str(artifacts / dag_file.stem / run_folder(third["run_id"]) / "plus" / "output"))
        == 31
    )
    assert (artifacts / cache.INDEX_DIR / "cached_flow" / "plus" / cache.LATEST).is_file()


@pytest.mark.slow
def test_github_under_act_twice_reuses_the_cached_steps(tmp_path: Path) -> None:
    from tests.github_check import tool

    source = write_pipeline(tmp_path, PIPELINE)
    marks = tmp_path / "marks"

    def run_once(*more: str) -> dict[str, Any]:
        done = subprocess.run(
            [
                str(REPO / ".venv" / "bin" / "pipec"),
                "run",
                f"{source.name}:cached_flow",
                "--target",
                "github",
                "--set",
                "via=act",
                "--set",
                f"act={tool('act')}",
                "--set",
                "fuse=false",
                "--param",
                f"marks={marks}",
                "--json",
                "--view",
                "quiet",
                *more,
            ],
            cwd=tmp_path,
            env=dict(os.environ),
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-4000:]
        summary: dict[str, Any] = json.loads(done.stdout)
        return summary

    first = run_once()
    assert executions(marks) == ["always", "base", "plus"]
    second = run_once()
    assert executions(marks) == ["always", "always", "base", "plus"]
    outputs = [{s["id"]: s["outputs"] for s in summary["steps"]} for summary in (first, second)]
    assert outputs[0] == outputs[1] and outputs[1]["plus"] == {"output": 21}
    assert (tmp_path / ".pipec" / cache.INDEX_DIR / "cached_flow" / "base" / cache.LATEST).is_file()
    run_once("--no-cache")  # act hands PIPEC_NO_CACHE=1 to every job: everything runs
    assert executions(marks) == ["always"] * 3 + ["base"] * 2 + ["plus"] * 2


def test_kubernetes_in_cluster_plan_commands_reuse_the_cached_steps(tmp_path: Path) -> None:
    source = write_pipeline(tmp_path, PIPELINE)
    marks, artifacts = tmp_path / "marks", tmp_path / "artifacts"
    artifacts.mkdir()
    compiled = driver.prepare(
        f"{source}:cached_flow",
        "kubernetes",
        ["image=example/steps:1", "volume=pvc", f"volume_path={artifacts}", "driver=cluster"],
    )
    plan = compiled.backend.plan(compiled.pipeline)  # type: ignore[attr-defined]
    assert "--cache-key" in plan.steps["plus"].runtime_args
    assert "--cache-key" not in plan.steps["always"].runtime_args  # cache=False: always runs

    def run_once(n: int) -> runs.RunResult:
        result = runs.run_plan(
            plan,
            {"n": n, "marks": str(marks)},
            tmp_path,
            ForkExecutor(),
            no_cache=True,
            view="quiet",
            target="kubernetes",
        )
        assert result.exit_code == 0
        return result

    run_once(2)
    assert executions(marks) == ["always", "base", "plus"]
    second = run_once(2)
    assert executions(marks) == ["always", "always", "base", "plus"]
    logs = {s.step_id: Path(s.log_path).read_text() for s in second.steps if s.log_path}
    assert "pipec runtime: cache: reused" in logs["plus"]
    assert "cache" not in logs["always"]
    run_once(3)
    assert executions(marks).count("plus") == 2
