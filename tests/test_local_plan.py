"""`pipec compile --target local`: a deterministic, self-contained plan.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from test_local_support import make_project, pipec

from pipec.backends.runner.plan import render

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
    assert pipec(tmp_path, "compile", ref, "--target", "local", "-o", "out").returncode == 0
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert plan["order"] == ["a", "b", "c", "c_2"]
    b = plan["nodes"]["b"]
    assert b["loops"] == ["loop_1"] and b["retries"] == 2 and b["timeout"] == 30
    assert b["secrets"] == ["TOKEN"]
    assert b["inputs"] == {"x": {"kind": "item", "loop": "loop_1"}}
    assert b["command"][:3] == ["{python}", "-m", "pipec.backends.runtime"]
    assert "output={artifact_root}/{run_id}/b{iteration}/output" in b["command"]
    assert plan["nodes"]["c_2"]["scopes"] == ["condition_1"]
    assert plan["nodes"]["condition_1"]["depends_on"] == ["c"]
    assert plan["params"] == {"limit": {"default": 3, "required": False, "type": "int"}}
    # Longest remaining path first: a heads a chain of three.
    assert plan["nodes"]["a"]["priority"] == 4


def test_render_fills_placeholders_once() -> None:
    filled = render("x={input:x}", lambda name: 'value:{"run_id": "{run_id}"}')
    assert filled == 'x=value:{"run_id": "{run_id}"}'
