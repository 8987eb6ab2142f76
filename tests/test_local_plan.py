"""`pipec compile --target local`: a deterministic, self-contained plan.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipec.backends.runner import plan as plans
from pipec.backends.runner.plan import render
from pipec.backends.runner.scheduler import priorities
from pipec.backends.runtime.invocation import parse
from tests.helpers import prepared
from tests.local_helpers import make_project, pipec

SOURCE = """
@step
def a() -> list[int]:
    return [1, 2]

@step(retries=2, timeout=30, secrets=["TOKEN"], resources=Resources(cpu=1, memory="1Gi"))
def b(x: int) -> int:
    return x

@step
def c(xs: list[int]) -> int:
    return sum(xs)

@pipeline
def planned(limit: int = 3) -> None:
    with foreach(a()) as x:
        y = b(x)
    total = c(collect(y))
    with when(total > limit):
        c(collect(y))
"""


def test_plan_is_deterministic_and_has_no_machine_details(tmp_path: Path) -> None:
    project = tmp_path / "one"
    ref = make_project(project, SOURCE)
    first = pipec(project, "compile", ref, "--target", "local", "-o", "out")
    assert first.returncode == 0, first.stderr
    text = (project / "out" / "plan.json").read_text()
    again = pipec(project, "compile", ref, "--target", "local", "-o", "out2")
    assert again.returncode == 0
    assert (project / "out2" / "plan.json").read_text() == text
    moved = tmp_path / "elsewhere"
    shutil.copytree(project, moved)
    elsewhere = pipec(moved, "compile", ref, "--target", "local", "-o", "out3")
    assert elsewhere.returncode == 0
    assert (moved / "out3" / "plan.json").read_text() == text
    assert str(tmp_path) not in text
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_plan_content(tmp_path: Path) -> None:
    ref = make_project(tmp_path, SOURCE)
    # As written: the optimizer would merge the two identical calls of `c` (cse).
    compiled = pipec(tmp_path, "compile", ref, "--target", "local", "-o", "out", "--no-optimize")
    assert compiled.returncode == 0, compiled.stderr
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert plan["order"] == ["a", "b", "c", "c_2"]
    b = plan["nodes"]["b"]
    assert b["loops"] == ["loop_1"] and b["retries"] == 2 and b["timeout"] == 30
    assert b["secrets"] == ["TOKEN"]
    assert b["inputs"] == {"x": {"kind": "item", "loop": "loop_1"}}
    # The runtime's own arguments: which interpreter (or container) runs them is the executor's.
    runtime = parse(b["runtime_args"])
    assert runtime.inputs == {"x": "{input:x}"}
    assert runtime.outputs == {"output": "{artifact_root}/{run_id}/b{iteration}/output"}
    assert plan["nodes"]["c_2"]["scopes"] == ["condition_1"]
    assert plan["nodes"]["condition_1"]["depends_on"] == ["c"]
    assert plan["params"] == [{"default": 3, "name": "limit", "required": False, "type": "int"}]
    assert "priority" not in b  # the scheduler computes it, with measured durations


def test_plan_round_trips_and_priorities_follow_the_longest_path(tmp_path: Path) -> None:
    ref = make_project(tmp_path, SOURCE)
    pipeline, settings, _ = prepared(str(tmp_path / ref), "local", optimize=False)  # as written
    plan = plans.build(pipeline, settings)
    assert plans.load(plan.to_text()) == plan
    # Longest remaining path first: a heads a chain of four (a, b, c, then c_2 under the when).
    assert priorities(plan, {}) == {"a": 4.0, "b": 3.0, "c": 2.0, "c_2": 1.0}
    # Measured durations weigh the path; a step never measured counts as their mean.
    assert priorities(plan, {"a": 1.0, "b": 5.0, "c": 3.0}) == {
        "a": 12.0,
        "b": 11.0,
        "c": 6.0,
        "c_2": 3.0,
    }


def test_a_plan_of_another_version_is_refused() -> None:
    with pytest.raises(plans.PlanVersionError, match="plan version 1"):
        plans.load('{"plan_version": 1, "nodes": {}}')


def test_render_fills_placeholders_once() -> None:
    filled = render("x={input:x}", lambda name: 'value:{"run_id": "{run_id}"}')
    assert filled == 'x=value:{"run_id": "{run_id}"}'
