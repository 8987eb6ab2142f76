"""The step runtime's own timeout and retries (`--timeout`, `--retries`, `--retry-delay`), run the
way an engine runs them: the vertex executor's command taken from the compiled PipelineSpec (KFP's
placeholders filled in as KFP's launcher does), the runtime command a GitHub job's wrapper runs.

A timed-out step is killed with everything it started, a child that ignores SIGTERM and left the
step's session among them; no process of it is left once the runtime has exited."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipec.backends.runtime import Invocation, InvocationError, parse
from pipec.backends.runtime.attempts import EXIT_TIMED_OUT
from pipec.backends.vertex import VertexBackend, VertexSettings
from tests.helpers import load_ok

# Each run is bounded so a broken timeout fails the test instead of hanging it (not a threshold).
HANG_GUARD = 300

STEPS = """\
import os, pathlib, signal, subprocess, sys, time
from pipec import step

@step
def sleeps(seconds: float) -> int:
    time.sleep(seconds)
    return 1

@step
def stubborn(pidfile: str) -> int:
    # A grandchild that ignores SIGTERM and leaves the step's session and process group.
    code = (
        "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "os.setsid(); time.sleep(3600)"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    pathlib.Path(pidfile + ".tmp").write_text(str(child.pid))
    os.rename(pidfile + ".tmp", pidfile)
    time.sleep(3600)
    return 1

@step
def flaky(counter: str, succeed_on: int) -> int:
    path = pathlib.Path(counter)
    attempt = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(attempt))
    if attempt < succeed_on:
        raise RuntimeError(f"attempt {attempt} fails")
    return attempt
"""


def _gone(pid: int) -> bool:
    """No such process, or only its exit status is left (a zombie holds no resources)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _vertex_command(tmp_path: Path, body: str, step: str) -> list[str]:
    """The executor's command and args of `step`, as the vertex PipelineSpec writes them."""
    (tmp_path / "steps_t.py").write_text(STEPS, encoding="utf-8")
    body = "from steps_t import flaky, sleeps, stubborn\n" + textwrap.dedent(body)
    pipeline = load_ok(tmp_path, body)
    settings = VertexSettings(
        image="img:1",
        project="p",
        region="us-central1",
        pipeline_root="gs://b/root",
        code_root=str(tmp_path),
    )
    spec = yaml.safe_load(VertexBackend(settings).emit(pipeline)["pipeline.yaml"])
    executors = spec["deploymentSpec"]["executors"]
    container = next(e["container"] for name, e in executors.items() if step in name)
    return [*container["command"], *container["args"]]


def _fill(command: list[str], values: dict[str, Any], outputs: Path) -> list[str]:
    """Replace KFP's placeholders as its launcher does (parameters as text, output files)."""
    filled = [sys.executable, *command[1:]]  # the image's python3 is this interpreter here

    def one(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "inputs.parameters":
            return str(values[name])
        return str(outputs / f"{name}.out")

    pattern = r"\{\{\$\.(inputs\.parameters|outputs\.parameters)\['(\w+)'\](?:\.output_file)?\}\}"
    return [re.sub(pattern, one, arg) for arg in filled]


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, check=False, timeout=HANG_GUARD
    )


def test_vertex_spec_carries_the_timeout_for_the_runtime(tmp_path: Path) -> None:
    command = _vertex_command(
        tmp_path,
        """
        @pipeline
        def p() -> None:
            sleeps.with_options(timeout=1.5, retries=2)(seconds=3600)
        """,
        "sleeps",
    )
    assert command[command.index("--timeout") + 1] == "1.5"
    assert "--retries" not in command  # Vertex retries the task itself (retryPolicy)


def test_a_sleeping_step_is_stopped_at_its_timeout(tmp_path: Path) -> None:
    command = _vertex_command(
        tmp_path,
        """
        @pipeline
        def p() -> None:
            sleeps.with_options(timeout=1)(seconds=3600)
        """,
        "sleeps",
    )
    done = _run(_fill(command, {"seconds": 3600}, tmp_path), tmp_path)
    assert done.returncode == EXIT_TIMED_OUT, done.stderr
    assert "pipec runtime: error: steps_t:sleeps timed out after 1s (attempt 1 of 1)" in done.stderr
    assert not (tmp_path / "output.out").exists()  # the engine gets no output parameter


def test_a_timeout_kills_a_child_that_ignores_sigterm_and_left_the_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    command = _vertex_command(
        tmp_path,
        f"""
        @pipeline
        def p() -> None:
            stubborn.with_options(timeout=2)(pidfile={str(pidfile)!r})
        """,
        "stubborn",
    )
    done = _run(_fill(command, {"pidfile": pidfile}, tmp_path), tmp_path)
    assert done.returncode == EXIT_TIMED_OUT, done.stderr
    assert "timed out after 2s" in done.stderr
    grandchild = int(pidfile.read_text())
    assert _gone(grandchild), f"process {grandchild} outlived the timed-out step"


def test_retries_run_fresh_attempts_until_one_succeeds(tmp_path: Path) -> None:
    (tmp_path / "steps_t.py").write_text(STEPS, encoding="utf-8")
    counter = tmp_path / "count"
    out = tmp_path / "out" / "output"
    invocation: Invocation[str] = Invocation(
        "steps_t:flaky",
        code_root=str(tmp_path),
        inputs={"counter": f'value:"{counter}"', "succeed_on": "value:3"},
        outputs={"output": str(out)},
    ).with_attempts(None, retries=2, retry_delay=0.1)
    done = _run([sys.executable, "-m", "pipec.backends.runtime", *invocation.argv()], tmp_path)
    assert done.returncode == 0, done.stderr
    assert counter.read_text() == "3"
    assert "pipec runtime: attempt 2 of 3 in 0.1s" in done.stderr
    assert "pipec runtime: attempt 3 of 3 in 0.1s" in done.stderr
    assert done.stderr.count("RuntimeError: attempt") == 2
    assert (out / "value.json").read_text() == "3"
    assert sorted(p.name for p in out.parent.iterdir()) == ["output"]  # no staging left


def test_retries_exhausted_end_with_the_last_attempts_code(tmp_path: Path) -> None:
    (tmp_path / "steps_t.py").write_text(STEPS, encoding="utf-8")
    counter = tmp_path / "count"
    invocation: Invocation[str] = Invocation(
        "steps_t:flaky",
        code_root=str(tmp_path),
        inputs={"counter": f'value:"{counter}"', "succeed_on": "value:9"},
        outputs={"output": str(tmp_path / "out")},
    ).with_attempts(None, retries=1)
    done = _run([sys.executable, "-m", "pipec.backends.runtime", *invocation.argv()], tmp_path)
    assert done.returncode == 1
    assert counter.read_text() == "2"
    assert not (tmp_path / "out").exists()


def test_a_stop_signal_kills_the_attempt_tree(tmp_path: Path) -> None:
    """The engine cancelling the step (SIGTERM to the runtime) ends everything below it."""
    (tmp_path / "steps_t.py").write_text(STEPS, encoding="utf-8")
    pidfile = tmp_path / "grandchild.pid"
    invocation: Invocation[str] = Invocation(
        "steps_t:stubborn",
        code_root=str(tmp_path),
        inputs={"pidfile": f'value:"{pidfile}"'},
        outputs={"output": str(tmp_path / "out")},
    ).with_attempts(3600.0)
    runtime = subprocess.Popen(
        [sys.executable, "-m", "pipec.backends.runtime", *invocation.argv()],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while not pidfile.exists():  # the grandchild has started
            assert runtime.poll() is None, runtime.communicate()[1]
            time.sleep(0.05)
        runtime.send_signal(signal.SIGTERM)
        _, stderr = runtime.communicate(timeout=HANG_GUARD)
    finally:
        if runtime.poll() is None:
            runtime.kill()
    assert runtime.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM" in stderr
    assert _gone(int(pidfile.read_text()))


def test_attempt_options_round_trip_and_are_checked() -> None:
    invocation: Invocation[str] = Invocation("m:f", outputs={"output": "/o"}).with_attempts(
        90.0, retries=3, retry_delay=2.5
    )
    argv = invocation.argv()
    assert argv[:10] == [
        "--component", "m:f", "--returns", "single",
        "--timeout", "90", "--retries", "3", "--retry-delay", "2.5",
    ]  # fmt: skip
    assert parse(argv) == invocation
    assert parse(invocation.unsupervised().argv()).supervised is False
    for wrong, message in (
        (["--timeout", "0"], "--timeout takes seconds above 0"),
        (["--timeout", "nan"], "--timeout takes seconds above 0"),
        (["--retries", "-1"], "--retries takes a whole number"),
        (["--retry-delay", "1"], "--retry-delay needs --retries"),
        (["--retries", "1", "--retry-delay", "x"], "--retry-delay takes seconds"),
    ):
        with pytest.raises(InvocationError, match=message):
            parse(["--component", "m:f", *wrong])


def test_without_the_options_the_step_runs_in_the_runtimes_own_process(tmp_path: Path) -> None:
    (tmp_path / "steps_t.py").write_text(
        "import os\ndef pid() -> int:\n    return os.getpid()\n", encoding="utf-8"
    )
    out = tmp_path / "out"
    command = [sys.executable, "-m", "pipec.backends.runtime", "--component", "steps_t:pid"]
    command += ["--code-root", str(tmp_path), "--output", f"output={out}"]
    runtime = subprocess.Popen(command)
    assert runtime.wait(timeout=HANG_GUARD) == 0
    assert (out / "value.json").read_text() == str(runtime.pid)
    assert os.getpid() != runtime.pid
