"""The local target runs every feature the IR can express, with run-time decisions."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy

from tests.local_helpers import (
    DUMPABLE,
    PIPEC,
    alive,
    by_label,
    ctrl_c_as_in_a_terminal,
    ended_or_explained,
    make_project,
    pipec,
    run_here,
    run_json,
    wait_for,
)

FAN = """
@step
def numbers(n: int) -> list[int]:
    return list(range(n))

@step
def square(x: int) -> int:
    return x * x

@step
def total(xs: list[int]) -> int:
    return sum(xs)

@step
def big(t: int) -> str:
    return f"big {t}"

@step
def small(t: int) -> str:
    return f"small {t}"

@pipeline
def fan(n: int = 4) -> None:
    with foreach(numbers(n)) as x:
        sq = square(x)
    t = total(collect(sq))
    with when(t > 10):
        big(t)
    with otherwise():
        small(t)
"""


def test_runtime_fan_out_fan_in_and_conditions(tmp_path: Path) -> None:
    ref = make_project(tmp_path, FAN)
    result = run_here(tmp_path, ref, {"n": 4})
    assert result.ok
    assert [result.output("square", iteration=(i,)) for i in range(4)] == [0, 1, 4, 9]
    assert result.output("total") == 14
    assert result.output("big") == "big 14"
    skipped = result.step("small")
    assert skipped.status == "skipped"
    assert "condition" in skipped.reason
    # Iterations get their own folders: <root>/<run>/<step>/<i>/<output>/
    meta = tmp_path / ".pipec" / result.run_id / "square" / "2" / "output" / "meta.json"
    assert json.loads(meta.read_text())["materializer"] == "json"

    other = run_here(tmp_path, ref, {"n": 2})
    assert other.output("small") == "small 1"
    assert other.step("big").status == "skipped"


def test_zero_items_loop_still_lists_its_steps(tmp_path: Path) -> None:
    ref = make_project(tmp_path, FAN)
    result = run_here(tmp_path, ref, {"n": 0})
    assert result.ok
    assert result.step("square").status == "skipped"
    assert result.output("total") == 0


def test_nested_group_inside_loop(tmp_path: Path) -> None:
    ref = make_project(
        tmp_path,
        """
        @step
        def double(x: int) -> int:
            return 2 * x

        @step
        def inc(x: int) -> int:
            return x + 1

        @step
        def join(xs: list[int]) -> list[int]:
            return xs

        @pipeline
        def inner(x: int) -> int:
            return inc(double(x))

        @pipeline
        def outer() -> None:
            with foreach([1, 2, 3]) as x:
                y = inner(x)
            join(collect(y))
        """,
    )
    result = run_here(tmp_path, ref)
    assert result.ok, result.to_json()
    assert result.output("join") == [3, 5, 7]


def test_artifacts_pass_through_the_store(tmp_path: Path) -> None:
    ref = make_project(
        tmp_path,
        """
        import numpy

        @step
        def make(folder: str) -> Path:
            out = Path(folder) / "made.txt"
            out.write_text("hello")
            return out

        @step
        def array() -> numpy.ndarray:
            return numpy.arange(6).reshape(2, 3)

        @step
        def blob() -> bytes:
            return b"\\x00\\x01"

        @step
        def use(p: Path, a: numpy.ndarray, b: bytes) -> str:
            return f"{p.read_text()} {int(a.sum())} {len(b)}"

        @pipeline
        def arts(folder: str) -> None:
            use(make(folder), array(), blob())
        """,
    )
    result = run_here(tmp_path, ref, {"folder": str(tmp_path)})
    assert result.ok, result.to_json()
    assert result.output("use") == "hello 15 2"
    assert numpy.array_equal(result.output("array"), numpy.arange(6).reshape(2, 3))
    stored = result.output("make")
    assert stored.name == "made.txt" and stored.read_text() == "hello"
    assert str(stored).startswith(str(tmp_path / ".pipec" / result.run_id / "make"))


FAILING = """
@step
def start() -> int:
    return 1

@step
def bad(x: int) -> int:
    print("about to fail")
    raise RuntimeError("broken on purpose")

@step
def after_bad(x: int) -> int:
    return x

@step
def independent(x: int) -> int:
    time.sleep(0.3)
    return x + 1

@step
def after_independent(x: int) -> int:
    return x

@pipeline
def failing() -> None:
    s = start()
    after_bad(bad(s))
    after_independent(independent(s))
"""


def test_failure_stops_downstream_and_independent_branches_finish(tmp_path: Path) -> None:
    ref = make_project(tmp_path, FAILING)
    done = pipec(tmp_path, "run", ref, "--view", "plain")
    assert done.returncode == 1
    assert "step bad failed" in done.stdout
    assert "broken on purpose" in done.stdout  # the tail of its log
    assert "Traceback" not in done.stderr  # the runner itself did not crash
    code, summary = run_json(tmp_path, ref)
    steps = by_label(summary)
    assert code == 1 and summary["status"] == "failed"
    assert steps["bad"]["status"] == "failed"
    assert steps["after_bad"]["status"] == "upstream_failed"
    assert steps["after_independent"]["status"] in ("succeeded", "cached")
    assert steps["after_independent"]["outputs"] == {"output": 2}


def test_retries_with_delay(tmp_path: Path) -> None:
    counter = tmp_path / "attempts.txt"
    ref = make_project(
        tmp_path,
        f"""
        @step(retries=2, retry_delay=0.2, cache=False)
        def flaky() -> int:
            path = Path({str(counter)!r})
            n = int(path.read_text()) if path.exists() else 0
            path.write_text(str(n + 1))
            if n < 1:
                raise RuntimeError("first attempt fails")
            return n

        @pipeline
        def retrying() -> None:
            flaky()
        """,
    )
    result = run_here(tmp_path, ref)
    assert result.ok
    flaky = result.step("flaky")
    assert flaky.attempts == 2
    assert flaky.outputs == {"output": 1}
    log = Path(flaky.log_path or "").read_text()
    assert "first attempt fails" in log and "attempt 2" in log


def test_retries_exhausted_fail(tmp_path: Path) -> None:
    ref = make_project(
        tmp_path,
        """
        @step(retries=1)
        def always() -> int:
            raise ValueError("never works")

        @pipeline
        def hopeless() -> None:
            always()
        """,
    )
    result = run_here(tmp_path, ref)
    assert result.status == "failed"
    assert result.step("always").attempts == 2


def test_timeout_kills_the_whole_process_tree(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    ref = make_project(
        tmp_path,
        f"""
        @step(timeout=1)
        def hang() -> int:
            child = subprocess.Popen(["sleep", "300"])
            Path({str(pid_file)!r}).write_text(str(child.pid))
            time.sleep(300)
            return 0

        @pipeline
        def hanging() -> None:
            hang()
        """,
    )
    result = run_here(tmp_path, ref)
    assert result.status == "failed"
    assert "timed out" in result.step("hang").reason
    grandchild = int(pid_file.read_text())
    wait_for(lambda: not alive(grandchild), "the grandchild to die")


def test_secrets_are_passed_but_never_written(tmp_path: Path) -> None:
    env_secret = "env-value-8f2c1d9a"
    file_secret = "dotenv-value-77ab31"
    (tmp_path / ".env").write_text(f"FROM_FILE='{file_secret}'\n")
    ref = make_project(
        tmp_path,
        """
        @step(secrets=["FROM_ENV", "FROM_FILE"])
        def use_secret() -> int:
            value = os.environ["FROM_ENV"]
            print("env:", value, flush=True)
            for ch in os.environ["FROM_FILE"]:  # written in pieces: masked anyway
                sys.stdout.write(ch)
                sys.stdout.flush()
            print(flush=True)
            subprocess.run(["sh", "-c", "echo child $FROM_ENV"], check=True)
            return len(value)

        @step(secrets=["FROM_ENV"])
        def leak_in_error() -> int:
            raise RuntimeError("oops " + os.environ["FROM_ENV"])

        @pipeline
        def secretive() -> None:
            use_secret()
            leak_in_error()
        """,
    )
    code, summary = run_json(tmp_path, ref, env={"FROM_ENV": env_secret})
    steps = by_label(summary)
    assert code == 1
    assert steps["use_secret"]["outputs"] == {"output": len(env_secret)}
    log = Path(steps["use_secret"]["log"]).read_text()
    assert "env: ***" in log and "child ***" in log
    error_log = Path(steps["leak_in_error"]["log"]).read_text()
    assert "oops ***" in error_log
    for path in (tmp_path / ".pipec").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert env_secret.encode() not in data, path
            assert file_secret.encode() not in data, path
    assert env_secret not in json.dumps(summary)


def test_a_step_reads_nothing_on_stdin_and_writes_its_output_to_its_log(tmp_path: Path) -> None:
    """A step's stdin is /dev/null (not the terminal `pipec run` was started from), and what it
    and its children print goes to its log, line by line, whatever the step before it did."""
    ref = make_project(
        tmp_path,
        """
        @step
        def noisy() -> str:
            print("from print")
            sys.stderr.write("from stderr\\n")
            subprocess.run(["sh", "-c", "echo from a child; read line || echo no input"])
            read = sys.stdin.read()
            os.close(0)  # the next step's process is a fork of its own: it has a stdin
            return read

        @step
        def quiet(previous: str) -> str:
            print("second")
            return os.read(0, 10).decode() + previous

        @pipeline
        def standard_streams() -> None:
            quiet(noisy())
        """,
    )
    code, summary = run_json(tmp_path, ref)
    steps = by_label(summary)
    assert code == 0, summary
    assert steps["quiet"]["outputs"] == {"output": ""}
    noisy = Path(steps["noisy"]["log"]).read_text()
    assert noisy.splitlines() == ["from print", "from stderr", "from a child", "no input"]
    assert Path(steps["quiet"]["log"]).read_text() == "second\n"


def test_missing_secret_fails_the_step_with_its_name(tmp_path: Path) -> None:
    ref = make_project(
        tmp_path,
        """
        @step(secrets=["PIPEC_TEST_SURELY_UNSET"])
        def needs() -> int:
            return 1

        @pipeline
        def lacking() -> None:
            needs()
        """,
    )
    result = run_here(tmp_path, ref)
    assert result.status == "failed"
    assert "PIPEC_TEST_SURELY_UNSET" in result.step("needs").reason


def test_json_output_shape(tmp_path: Path) -> None:
    ref = make_project(tmp_path, FAN)
    done = pipec(tmp_path, "run", ref, "--param", "n=3", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)  # the whole of stdout is one JSON document
    assert set(summary) == {
        "run_id", "pipeline", "status", "duration", "errors", "params", "steps"
    }
    assert summary["status"] == "succeeded" and summary["pipeline"] == "fan"
    assert summary["params"] == {"n": 3}  # as `runs show --json` prints them
    for step in summary["steps"]:
        assert {"id", "iteration", "status", "outputs", "attempts", "reason"} <= set(step)
    steps = by_label(summary)
    assert steps["square[2]"]["outputs"] == {"output": 4}
    assert steps["numbers"]["outputs"] == {"output": [0, 1, 2]}
    assert steps["big"]["status"] == "skipped"
    shown = pipec(tmp_path, "runs", "show", summary["run_id"], "--json")
    assert json.loads(shown.stdout)["params"] == {"n": 3}
    assert by_label(json.loads(shown.stdout))["total"]["outputs"] == {"output": 5}
    listed = pipec(tmp_path, "runs", "list", "--json")
    assert summary["run_id"] in [r["run_id"] for r in json.loads(listed.stdout)]
    logs = pipec(tmp_path, "logs", summary["run_id"], "square[1]")
    assert logs.returncode == 0


def test_invalid_input_exits_2_without_traceback(tmp_path: Path) -> None:
    ref = make_project(tmp_path, FAN)
    for args in (
        ["run", "missing.py"],
        ["run", ref, "--param", "n=notanumber"],
        ["run", ref, "--param", "nope=1"],
        ["run", ref, "--set", "unknown_setting=1"],
        ["run", "--resume", "no-such-run"],
    ):
        done = pipec(tmp_path, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr


def _intervals(folder: Path) -> list[tuple[float, float]]:
    return sorted(tuple(json.loads(p.read_text())) for p in folder.glob("*.json"))  # type: ignore[misc]


def _overlaps(intervals: list[tuple[float, float]]) -> bool:
    return any(b[0] < a[1] for a, b in itertools.pairwise(intervals))


SPANS = """
@step(cache=False{extra})
def span(i: int, folder: str) -> int:
    start = time.time()
    time.sleep(0.15)
    Path(folder, f"{{i}}.json").write_text(json.dumps([start, time.time()]))
    return i

@pipeline
def spans(folder: str) -> None:
    with foreach([0, 1, 2, 3]) as i:
        span(i, folder)
"""


def test_parallelism_limit_is_respected(tmp_path: Path) -> None:
    ref = make_project(tmp_path, "import json\n" + SPANS.format(extra=""))
    result = run_here(tmp_path, ref, {"folder": str(tmp_path)}, parallelism=1)
    assert result.ok
    assert not _overlaps(_intervals(tmp_path))


def test_cpu_requests_are_checked_against_capacity(tmp_path: Path) -> None:
    ref = make_project(
        tmp_path, "import json\n" + SPANS.format(extra=", resources=Resources(cpu=2)")
    )
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "t"\n[tool.pipec.targets.local]\ncpus = 3\nparallelism = 4\n'
    )
    result = run_here(tmp_path, ref, {"folder": str(tmp_path)})
    assert result.ok
    assert not _overlaps(_intervals(tmp_path))  # two 2-cpu steps never fit in 3 cpus


def test_runner_interrupt_then_resume(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    ref = make_project(
        tmp_path,
        f"""
        @step
        def first() -> int:
            with open({str(tmp_path / "first.count")!r}, "a") as f:
                f.write("x")
            return 1

        @step
        def wait_gate(x: int) -> int:
            while not Path({str(gate)!r}).exists():
                time.sleep(0.05)
            return x + 1

        @pipeline
        def gated() -> None:
            wait_gate(first())
        """,
    )
    proc = subprocess.Popen(
        [str(PIPEC), "run", ref, "--view", "plain"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **DUMPABLE},
        preexec_fn=ctrl_c_as_in_a_terminal,
    )
    log_dir = tmp_path / ".pipec" / "logs"
    wait_for(lambda: any(log_dir.rglob("wait_gate.log")), "wait_gate to start")
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    code, err = ended_or_explained(proc, 60)
    assert code == 130, err
    run_id = next(log_dir.iterdir()).name
    row = sqlite3.connect(tmp_path / ".pipec" / "metadata.db").execute(
        "SELECT status FROM runs WHERE run_id=?", (run_id,)
    )
    assert row.fetchone() == ("interrupted",)
    gate.write_text("open")
    code, summary = run_json(tmp_path, "--resume", run_id)
    assert code == 0 and summary["run_id"] == run_id
    assert (tmp_path / "first.count").read_text() == "x"  # not run again
    assert by_label(summary)["wait_gate"]["outputs"] == {"output": 2}
