"""Run the airflow target's DAG files for real: `dag.test()` in `local` mode against a SQLite
metadata database, in the Airflow tool environment. Every output must equal what the local target
writes for the same pipeline, and hostile names and values must arrive unchanged and run nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipec.backends.airflow.paths import run_folder
from tests.airflow_helpers import (
    airflow_env,
    check,
    compile_to,
    inherited_env,
    local_settings,
    migrate,
    stored_outputs,
)
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
        result = check(["run", str(dag_file), dag_file.stem, json.dumps(conf)], self.env)
        return result, self.artifacts / dag_file.stem / run_folder(result["run_id"])


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> AirflowRunner:
    return AirflowRunner(tmp_path_factory.mktemp("airflow"))


def local_run(ref: str, params: dict[str, Any], artifacts: Path, cwd: Path) -> dict[str, str]:
    """Run REF on the local target; return its outputs as `step[/i]/output` -> content hash."""
    command = [sys.executable, "-m", "pipec.cli", "run", ref, "--target", "local", "--json"]
    command += ["--no-cache", "--view", "quiet", "--set", f"artifact_root={artifacts}"]
    for name, value in params.items():
        # The CLI takes a str parameter's text as it is, and JSON for the other types.
        text = value if isinstance(value, str) else json.dumps(value)
        command += ["--param", f"{name}={text}"]
    env = {**inherited_env(), "REGISTRY_TOKEN": SECRET}  # what the Airflow tasks see
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(done.stdout)
    return stored_outputs(artifacts / summary["run_id"])


CASES = [
    ("examples/hello.py", {"name": "Ada"}),
    ("examples/training.py", {"lrs": [0.5, 0.25, 0.125]}),
    ("examples/nested.py", {"shards": 5, "mode": "dry-run"}),
    ("examples/nested.py", {"shards": 2, "strict": True}),
    ("examples/iris.py", {"cs": [0.1, 1.0]}),
]


@pytest.mark.parametrize(("ref", "params"), CASES, ids=lambda v: str(v))
def test_dag_run_matches_the_local_target(
    airflow: AirflowRunner, tmp_path: Path, ref: str, params: dict[str, Any]
) -> None:
    result, run_dir = airflow.run(str(REPO / ref), params)
    assert result["state"] == "success", result
    local = local_run(str(REPO / ref), params, tmp_path / "local", tmp_path)
    assert stored_outputs(run_dir) == local
    # Every step the local target ran ran here too, and nothing else did.
    ran = {key.split("/")[0] for key in local}
    succeeded = {
        task
        for task, states in result["tasks"].items()
        if task in {k.split("/")[0] for k in stored_outputs(run_dir)} and "success" in states
    }
    assert succeeded == ran


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
    local = local_run(str(path), {"n": n}, tmp_path / "local", tmp_path)
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
    assert stored_outputs(run_dir) == local_run(str(path), {}, tmp_path / "local", tmp_path)


HOSTILE = [
    'x"; echo $(id) > /tmp/pwned',
    "{{ 7 * 7 }} {% raw %} {# c #}",
    "line\nbreak\\n \\ back\\slash 'single' \"double\"",
    "ünïcødé ✓ \u2028 \U0001f600",
    "$(touch /tmp/pwned) `id` ${HOME}",
    "ends.sh",
]


def test_hostile_names_and_values_arrive_verbatim(airflow: AirflowRunner, tmp_path: Path) -> None:
    source = f"""
        import json
        import os

        HOSTILE = {HOSTILE!r}

        @step
        def echo(text: str, items: list[str], tag: str) -> str:
            return json.dumps(
                {{"text": text, "items": items, "tag": tag, "env": os.environ["HOSTILE_ENV"]}}
            )

        @step
        def item(value: str) -> str:
            return value

        @step
        def fan_in(values: list[str]) -> list[str]:
            return values

        @pipeline(name="hostile {{{{ run_id }}}} \\"; $(id)")
        def hostile(text: str = HOSTILE[0], items: list[str] = HOSTILE) -> None:
            # Constants and env values with Jinja syntax are written into the DAG file itself.
            echo.with_options(
                name=HOSTILE[1] + " step", env={{"HOSTILE_ENV": HOSTILE[2] + HOSTILE[1]}}
            )(text=text, items=items, tag=HOSTILE[1] + HOSTILE[3])
            with foreach(HOSTILE) as value:
                got = item.with_options(name=HOSTILE[4])(value=value)
            fan_in(values=collect(got))
    """
    path = write_pipeline(tmp_path, source)
    conf = {"text": HOSTILE[4] + HOSTILE[1], "items": HOSTILE[::-1]}
    result, run_dir = airflow.run(str(path), conf, code_root=tmp_path)
    assert result["state"] == "success", result
    values = [
        json.loads(p.read_text(encoding="utf-8")) for p in sorted(run_dir.rglob("value.json"))
    ]
    echoed = [json.loads(v) for v in values if isinstance(v, str) and v.startswith('{"text"')]
    assert echoed == [
        {
            "text": conf["text"],
            "items": conf["items"],
            "tag": HOSTILE[1] + HOSTILE[3],
            "env": HOSTILE[2] + HOSTILE[1],
        }
    ]
    # Each loop item reached its iteration unchanged, and collect() gathered them in order.
    assert [v for v in values if isinstance(v, list)] == [HOSTILE]
    assert not Path("/tmp/pwned").exists()
