"""Airflow's own shapes, run for real: `dag.test()` in `local` mode against a SQLite metadata
database, in the Airflow tool environment. Which tasks a branch skips, where skips stop, and how
conditions behave per iteration of a mapped task group; the outputs must still equal what the
local target writes for the same pipeline.

Runs that hold for every target (every example equals the local run, hostile values arrive
verbatim) are in tests/conformance/test_run.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipec.backends.airflow.paths import run_folder
from tests.airflow_helpers import (
    airflow_env,
    compile_to,
    inherited_env,
    local_settings,
    migrate,
    run_dag,
    stored_outputs,
)
from tests.conformance.adapters.local import cli_run
from tests.conftest import REPO
from tests.helpers import write_pipeline

pytestmark = pytest.mark.slow

SECRET = "s3cr3t value"


class AirflowRunner:
    """One Airflow home (SQLite database, DAGs folder) shared by the runs of this module."""

    def __init__(self, base: Path) -> None:
        self.dags = base / "dags"
        self.artifacts = base / "artifacts"
        self.dags.mkdir()
        self.env = airflow_env(base / "home", self.dags, {"AIRFLOW_VAR_REGISTRY_TOKEN": SECRET})
        migrate(self.env)

    def run(
        self, ref: str, conf: dict[str, Any], code_root: Path = REPO
    ) -> tuple[dict[str, Any], Path]:
        """Compile REF in local mode, run it with `conf`; return the result and its run folder."""
        dag_file = compile_to(ref, self.dags, local_settings(self.artifacts, code_root))
        result = run_dag(dag_file, conf, self.env)
        return result, self.artifacts / dag_file.stem / run_folder(result["run_id"])


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> AirflowRunner:
    return AirflowRunner(tmp_path_factory.mktemp("airflow"))


def local_run(ref: str, params: dict[str, Any], artifacts: Path) -> dict[str, str]:
    """REF on the local target, with what the Airflow tasks inherit (AirflowRunner's env without
    Airflow's own variables) and the secret the local way."""
    return cli_run(ref, params, artifacts, {**inherited_env(), "REGISTRY_TOKEN": SECRET})


def test_branches_skip_exactly_their_steps(airflow: AirflowRunner) -> None:
    # shards=2: the first word count is 2*24 = 48 (not > 100), the second is 48 >= 20:
    # the outer otherwise runs, and in it the inner `then` (label_2, publish_2).
    result, _ = airflow.run(str(REPO / "examples/nested.py"), {"shards": 2})
    tasks = result["tasks"]
    assert tasks["label"] == tasks["publish"] == ["skipped"]
    assert tasks["condition_2"] == tasks["label_2"] == tasks["publish_2"] == ["success"]
    assert tasks["label_3"] == tasks["publish_3"] == ["skipped"]


FLOW = """
    @step
    def number(n: int) -> int:
        return n

    @step
    def mark(tag: str) -> str:
        return tag

    @step
    def gather(items: list[str]) -> list[str]:
        return items

    @step
    def words(n: int) -> list[str]:
        return [f"w{i}" for i in range(n)]

    @pipeline
    def flow(n: int = 0) -> None:
        value = number(n)
        with when(value > 0):
            inside = mark.with_options(name="inside")("then")
            with foreach(["a", "b"]) as x:
                got = mark.with_options(name="each")(x)
            gather.with_options(name="gathered")(collect(got))
        mark.with_options(name="after")("after").after(inside)
        with foreach(words(n)) as w:
            m = mark.with_options(name="per_word")(w)
        gather.with_options(name="all")(collect(m))
"""


@pytest.mark.parametrize("n", [0, 3])
def test_skips_stop_at_the_join_and_empty_loops_fan_in_nothing(
    airflow: AirflowRunner, tmp_path: Path, n: int
) -> None:
    path = write_pipeline(tmp_path, FLOW)
    result, run_dir = airflow.run(str(path), {"n": n}, code_root=tmp_path)
    assert result["state"] == "success", result
    tasks = result["tasks"]
    inside = ["inside", "each", "gathered"]
    if n == 0:
        # A false test skips exactly the steps in its branch (the loop in it never expands),
        # and a step after the join that waited for one of them still runs.
        assert all(set(tasks[t]) == {"skipped"} for t in inside)
        assert tasks["per_word"] == ["skipped"]  # a mapped task over no items
    else:
        assert tasks["each"] == ["success", "success"]
        assert tasks["per_word"] == ["success"] * n
    assert tasks["after"] == tasks["all"] == ["success"]
    local = local_run(str(path), {"n": n}, tmp_path / "local")
    assert stored_outputs(run_dir) == local


LOOP_BRANCH = """
    @step
    def double(x: int) -> int:
        return 2 * x

    @step
    def big(x: int) -> str:
        return f"big {x}"

    @step
    def small(x: int) -> str:
        return f"small {x}"

    @step
    def total(xs: list[int]) -> int:
        return sum(xs)

    @pipeline
    def sorter(xs: list[int] = [1, 2, 3, 4]) -> None:
        with foreach(xs) as x:
            d = double(x)
            with when((d > 4) & (x != 4)):
                big(d)
            with otherwise():
                with when(x == 1):
                    small.with_options(name="one")(x)
                with otherwise():
                    small(x)
        total(collect(d))
"""


def test_conditions_inside_a_foreach_branch_per_iteration(
    airflow: AirflowRunner, tmp_path: Path
) -> None:
    path = write_pipeline(tmp_path, LOOP_BRANCH)
    result, run_dir = airflow.run(str(path), {}, code_root=tmp_path)
    assert result["state"] == "success", result
    tasks = result["tasks"]
    # Iteration by iteration exactly one side runs: x=3 is big, x=1 is one, 2 and 4 are small.
    assert tasks["big"] == ["skipped", "skipped", "success", "skipped"]
    assert tasks["one"] == ["success", "skipped", "skipped", "skipped"]
    assert tasks["small"] == ["skipped", "success", "skipped", "success"]
    assert stored_outputs(run_dir) == local_run(str(path), {}, tmp_path / "local")
