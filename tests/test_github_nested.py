"""The github target's foreach inside a foreach (flattened by a `<loop>-iterations` job) and
`when` inside a foreach (decided by each iteration's job), without act: the workflow passes the
three checkers with hostile values, and the job wrapper (`pipec.backends.github.job`) lists
iterations, finds items, outer outputs and collects by index, refuses more than one matrix holds,
and skips an iteration whose branch is not taken. Runs under act: tests/conformance/test_run.py
(tuning, the nested shapes) and test_github_run.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipec.backends.github import job, job_io
from pipec.backends.runtime import store
from tests.test_github import HOSTILE, compiled_as_data

NESTED = f"""
@step
def widths(n: int) -> list[int]:
    return list(range(n))

@step
def cell(row: str, col: str, width: int) -> str:
    return row + col + str(width)

@step
def mark(row: str, col: str) -> str:
    return row + "!" + col

@step
def join(cells: list[str]) -> str:
    return ",".join(cells)

@pipeline
def grid(rows: list[str] = [{HOSTILE!r}, "b"], n: int = 2) -> None:
    with foreach(rows) as row:
        ws = widths(n)
        with foreach(ws) as w:
            with foreach([{HOSTILE!r}, "y"], parallelism=3) as col:
                with when(col != {HOSTILE!r}):
                    mark(row=row, col=col)
                c = cell(row=row, col=col, width=w)
            joined = join(collect(c))
        join.with_options(name="all")(collect(joined))
"""


def test_a_nested_foreach_with_hostile_values_passes_the_checkers(tmp_path: Path) -> None:
    """Three loops deep, items from a parameter, an outer step's output and a literal, a when
    inside: one `-iterations` job per inner loop, each inner job one matrix over its list, and
    every value stays data (the only expressions are the target's own)."""
    text = compiled_as_data(tmp_path, NESTED)
    jobs = yaml.safe_load(text)["jobs"]
    assert {"loop_2-iterations", "loop_3-iterations"} <= set(jobs)
    matrix = jobs["cell"]["strategy"]
    listed = "needs.loop_3-iterations.outputs.iterations"
    guarded = f"needs.loop_3-iterations.result == 'success' && {listed} || '[]'"
    assert matrix["matrix"]["index"] == "${{ fromJSON(" + guarded + ") }}"
    assert matrix["max-parallel"] == 3
    # no iteration: skipped; an outer job's skip (an empty outer list) is not inherited
    assert jobs["cell"]["if"].endswith("&& (needs.loop_3-iterations.outputs.iterations != '[]')")
    run = jobs["cell"]["steps"][-1]
    assert "--loop-item col=loop_3" in run["run"]
    assert "PIPEC_WHEN" in jobs["mark"]["steps"][-1]["env"]
    assert json.loads(run["env"]["PIPEC_ITEMS_loop_3"].replace("\\u0024", "$")) == [HOSTILE, "y"]
    # the outer step's output is read from the store at the outer iteration
    loops = json.loads(run["env"]["PIPEC_LOOPS"])
    assert loops["loop_2"] == {
        "depth": 2,
        "outer": "loop_1",
        "store": ["widths", "output"],
        "store_depth": 1,
    }
    assert "--loop-collect cells=cell/output=loop_3" in jobs["join"]["steps"][-1]["run"]


@pytest.fixture
def job_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The variables every job has; the job outputs file it appends to."""
    monkeypatch.setenv("PIPEC_ARTIFACT_ROOT", str(tmp_path / "store"))
    monkeypatch.setenv("PIPEC_RUN_ID", "7")
    outputs = tmp_path / "github_output"
    outputs.write_text("", encoding="utf-8")
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    return outputs


def _outputs(path: Path) -> dict[str, Any]:
    """The job outputs written with `write_output` (name<<delimiter blocks)."""
    found: dict[str, Any] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines:
        name, _, delimiter = lines.pop(0).partition("<<")
        end = lines.index(delimiter)
        found[name] = json.loads("\n".join(lines[:end]))
        lines = lines[end + 1 :]
    return found


def _loops(monkeypatch: pytest.MonkeyPatch, specs: dict[str, Any], **items: Any) -> None:
    monkeypatch.setenv("PIPEC_LOOPS", json.dumps(specs))
    for var, value in items.items():
        monkeypatch.setenv(var, json.dumps(value))


OUTER = {"depth": 1, "outer": None, "env": "OUTER"}


def test_iterations_cover_every_outer_iteration_and_skip_empty_ones(
    job_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inner list is the outer item (a foreach over a loop item): `[]` inside gives no
    iteration for that outer item, in order, outermost first."""
    inner = {"depth": 2, "outer": "outer", "item": "outer"}
    _loops(monkeypatch, {"outer": OUTER, "inner": inner}, OUTER=[[5, 6], [], [7]])
    assert job.main(["iterations", "--loop", "inner"]) == 0
    assert _outputs(job_env) == {"iterations": ["0/0", "0/1", "2/0"]}


def test_iterations_of_an_empty_outer_list_are_none(
    job_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner = {"depth": 2, "outer": "outer", "env": "INNER"}
    _loops(monkeypatch, {"outer": OUTER, "inner": inner}, OUTER=[], INNER=[1, 2])
    assert job.main(["iterations", "--loop", "inner"]) == 0
    assert _outputs(job_env) == {"iterations": []}


def test_a_branch_not_taken_lists_no_iteration(
    job_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner = {"depth": 2, "outer": "outer", "env": "INNER"}
    _loops(monkeypatch, {"outer": OUTER, "inner": inner}, OUTER=[1], INNER=[1, 2])
    monkeypatch.setenv("PIPEC_TAKEN", "false")
    assert job.main(["iterations", "--loop", "inner"]) == 0
    assert _outputs(job_env) == {"iterations": []}


def test_more_iterations_than_a_matrix_holds_is_one_clear_error(
    job_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """17 x 16 = 272 > 256: the job fails naming the numbers, and writes no truncated list."""
    inner = {"depth": 2, "outer": "outer", "env": "INNER"}
    _loops(monkeypatch, {"outer": OUTER, "inner": inner}, OUTER=list(range(17)), INNER=[0] * 16)
    assert job.main(["iterations", "--loop", "inner"]) == job.EXIT_BAD
    error = capsys.readouterr().err
    assert "foreach 'inner' has 272 iterations" in error and "at most 256 jobs" in error
    assert _outputs(job_env) == {}


def test_items_from_an_outer_iterations_output_are_read_from_the_store(
    job_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = str(job_env.parent / "store")
    store.write([10, 20, 30], store.output_uri(root, "7", "widths", (1,), "output"))
    store.write([], store.output_uri(root, "7", "widths", (0,), "output"))
    inner = {"depth": 2, "outer": "outer", "store": ["widths", "output"], "store_depth": 1}
    _loops(monkeypatch, {"outer": OUTER, "inner": inner}, OUTER=["a", "b"])
    assert job.main(["iterations", "--loop", "inner"]) == 0
    assert _outputs(job_env) == {"iterations": ["1/0", "1/1", "1/2"]}


def test_a_when_not_taken_in_an_iteration_runs_nothing(
    job_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`x > 5` over this iteration's item (the second of [9, 1]) is false: the job ends at
    once, saying so, before it looks at the step (whose runtime argv here is empty)."""
    _loops(monkeypatch, {"outer": OUTER}, OUTER=[9, 1])
    monkeypatch.setenv("PIPEC_INDEX", "1")
    test = {
        "kind": "compare",
        "op": ">",
        "left": {"kind": "item", "loop": "outer"},
        "right": {"kind": "const", "value": 5},
    }
    monkeypatch.setenv("PIPEC_WHEN", json.dumps([{"condition": "c", "test": test, "then": True}]))
    assert job.main(["step", "--operand", "loops.outer=item:outer", "--"]) == 0
    assert job_io.SKIPPED in capsys.readouterr().out
