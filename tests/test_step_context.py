"""`pipec.context()`: what a running step knows about itself, its own folder for files, and the
metrics it logs; the same runtime code on every target (the engines fill the PIPEC_* variables
their own way; see backends/runtime/context.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pipec
from pipec.backends.runtime import context

REPO = Path(__file__).resolve().parent.parent

PROBE = """
import pipec
from pipec import foreach, collect, pipeline, step

@step(retries=1)
def probe(x: int) -> dict:
    c = pipec.context()
    if c.attempt == 1 and x == 1:
        raise RuntimeError("first attempt of iteration 1 fails")
    c.log_metadata(seen=x)
    return {"run": c.run_id, "pipeline": c.pipeline, "step": c.step,
            "iteration": list(c.iteration or ()), "attempt": c.attempt}

@step
def same(d: dict) -> dict:
    return d

@pipeline
def probing(xs: list = [0, 1]):
    with foreach(xs) as x:
        r = same(probe(x))
    collect(r)
"""


def _run(project: Path, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "pipec.cli", "run", *args, "--json", "--view", "quiet"],
        cwd=project,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict = json.loads(done.stdout)
    return result


def test_a_step_knows_its_run_step_iteration_and_attempt(tmp_path: Path) -> None:
    (tmp_path / "probing.py").write_text(PROBE)
    result = _run(tmp_path, "probing.py")
    by_label = {(s["id"], tuple(s["iteration"])): s for s in result["steps"]}
    for index in (0, 1):
        seen = pipec.runs.get(result["run_id"], tmp_path).output("probe", iteration=(index,))
        assert seen == {
            "run": result["run_id"],
            "pipeline": "probing",
            "step": "probe",
            "iteration": [index],
            "attempt": 2 if index == 1 else 1,
        }
        assert by_label[("probe", (index,))]["attempts"] == (2 if index == 1 else 1)
    step = pipec.runs.get(result["run_id"], tmp_path).step("probe", (1,))
    assert step.metadata() == {"seen": 1}


def test_fused_members_each_see_their_own_step(tmp_path: Path) -> None:
    (tmp_path / "probing.py").write_text(PROBE)
    result = _run(tmp_path, "probing.py", "--set", "fuse=true")
    seen = pipec.runs.get(result["run_id"], tmp_path).output("probe", iteration=(0,))
    assert seen["step"] == "probe"


def test_vocabulary_metrics_and_a_moved_file(tmp_path: Path) -> None:
    (tmp_path / "vocabulary.py").write_text((REPO / "examples" / "vocabulary.py").read_text())
    result = _run(tmp_path, "vocabulary.py")
    run = pipec.runs.get(result["run_id"], tmp_path)
    assert run.step("size").metrics() == {"words": 8}
    exported = run.output("export")
    assert exported.read_text().splitlines()[0] == "0,brown"
    # The step's own folder is gone: moved into the store, then removed with the step.
    leftovers = [p for p in (tmp_path / ".pipec").rglob(".context.tmp-*")]
    assert leftovers == []


def test_outside_a_step_there_is_no_context() -> None:
    with pytest.raises(context.NoStepContext, match="only available while a step runs"):
        pipec.context()


def test_an_engine_that_fills_nothing_still_runs_the_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("PIPEC_RUN_ID", "PIPEC_STEP_ID", "PIPEC_ITERATION", "PIPEC_ATTEMPT"):
        monkeypatch.delenv(name, raising=False)
    found = context.from_environment(str(tmp_path))
    assert (found.run_id, found.step, found.iteration, found.attempt) == (None, None, None, None)
    found.log_metric("loss", 0.5)  # the step's log has it, on every target
    assert 'pipec: {"metric": "loss", "value": 0.5}' in capsys.readouterr().err
    with pytest.raises(ValueError, match="finite"):
        found.log_metric("loss", float("nan"))
    with pytest.raises(ValueError, match="plain file name"):
        found.path("../escape")
    made = found.path("a.txt")
    assert made.parent.parent == tmp_path and made.parent.name.startswith(".context.tmp-")
    found.close()
    assert not made.parent.exists()


CONTEXT_STEP = """
import pipec
from pipec import step

@step
def seen() -> dict:
    c = pipec.context()
    if c.attempt == 1 and c.step == "flaky":
        raise RuntimeError("the first attempt fails")
    return {"run": c.run_id, "pipeline": c.pipeline, "step": c.step,
            "iteration": None if c.iteration is None else list(c.iteration),
            "attempt": c.attempt}
"""


def _runtime(tmp_path: Path, *options: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The runtime on `seen` with `options`, in an environment without PIPEC_* variables (as a
    KFP container starts); its output's value file."""
    (tmp_path / "ctxstep.py").write_text(CONTEXT_STEP)
    out = tmp_path / "out" / "output"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPEC_")}
    command = [sys.executable, "-m", "pipec.backends.runtime", "--component", "ctxstep:seen"]
    done = subprocess.run(
        [*command, "--code-root", str(tmp_path), "--output", f"output={out}", *options],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    return done, out / "value.json"


def test_context_given_on_the_command_line_is_the_steps_context(tmp_path: Path) -> None:
    """What KFP engines do (`--context` in KFP placeholders): the runtime makes it the context,
    also for an attempt it runs under its own timeout, which keeps the engine's attempt."""
    given = ["run_id=r-1", "pipeline=p", "step=fit_model", "iteration=", "attempt=1"]
    options = [part for value in given for part in ("--context", value)]
    done, value = _runtime(tmp_path, *options, "--timeout", "120")
    assert done.returncode == 0, done.stderr
    assert json.loads(value.read_text()) == {
        "run": "r-1",
        "pipeline": "p",
        "step": "fit_model",
        "iteration": [],
        "attempt": 1,
    }


def test_left_out_context_is_none_and_runtime_retries_count_attempts(tmp_path: Path) -> None:
    """Inside a KFP foreach no iteration is given (None); with retries the runtime keeps, the
    attempt is the runtime's own count."""
    done, value = _runtime(tmp_path, "--context", "step=flaky", "--retries", "1")
    assert done.returncode == 0, done.stderr
    seen = json.loads(value.read_text())
    assert (seen["step"], seen["iteration"], seen["attempt"], seen["run"]) == (
        "flaky",
        None,
        2,
        None,
    )


def test_an_unknown_context_key_is_a_bad_invocation(tmp_path: Path) -> None:
    done, _ = _runtime(tmp_path, "--context", "run=1")
    assert done.returncode == 2
    assert "--context run: not a context key (use run_id, pipeline, step" in done.stderr
