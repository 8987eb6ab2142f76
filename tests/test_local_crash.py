"""Killing the runner: nothing of the run is left running, nothing finished is lost, and the run
resumes once. Steps here start grandchildren in sessions of their own (`setsid`), which a
process-group kill cannot reach."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from pipec.backends.runtime import store
from tests.local_helpers import (
    PIPEC,
    alive,
    by_label,
    make_project,
    processes_with_env,
    run_here,
    run_json,
    wait_for,
)

SEED = int(os.environ.get("PIPEC_CRASH_SEED", "20251201"))
TRIALS = int(os.environ.get("PIPEC_CRASH_TRIALS", "6"))


def _runs(root: Path) -> list[tuple[str, str]]:
    db = root / ".pipec" / "metadata.db"
    if not db.exists():
        return []
    try:
        return sqlite3.connect(db).execute("SELECT run_id, status FROM runs").fetchall()
    except sqlite3.OperationalError:  # the runner is creating the schema
        return []


def _start(root: Path, ref: str, token: str) -> subprocess.Popen[bytes]:
    """`pipec run REF` with `PIPEC_TEST_TOKEN=token` in its environment (and so in every process
    the run starts)."""
    return subprocess.Popen(
        [str(PIPEC), "run", ref, "--view", "plain"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PIPEC_TEST_TOKEN": token},
    )


def _nothing_left(token: str) -> None:
    wait_for(lambda: not processes_with_env("PIPEC_TEST_TOKEN", token), "the run's processes")


SETSID_STEP = """
def _mark(name: str) -> None:
    with open({root!r} + "/" + name + ".count", "a") as f:
        f.write("x")

@step
def first() -> int:
    _mark("first")
    return 1

@step
def detached(x: int) -> int:
    _mark("detached")
    child = subprocess.Popen(["setsid", "sleep", "300"])
    other = subprocess.Popen(["sleep", "300"], start_new_session=True)
    Path({root!r} + "/children").write_text(f"{{child.pid}} {{other.pid}}")
    while not Path({root!r} + "/gate").exists():
        time.sleep(0.05)
    child.kill()
    other.kill()
    return x + 1

@pipeline
def escaping() -> None:
    detached(first())
"""


def _children(root: Path) -> list[int]:
    return [int(pid) for pid in (root / "children").read_text().split()]


def _count(path: Path) -> int:
    return len(path.read_text()) if path.exists() else 0


def test_kill_9_of_the_runner_kills_setsid_grandchildren(tmp_path: Path) -> None:
    ref = make_project(tmp_path, SETSID_STEP.format(root=str(tmp_path)))
    runner = _start(tmp_path, ref, "kill9")
    wait_for(lambda: (tmp_path / "children").exists(), "the step's children")
    children = _children(tmp_path)
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=30)
    for pid in children:
        wait_for(lambda pid=pid: not alive(pid), f"grandchild {pid} to die with the runner")
    _nothing_left("kill9")
    (run_id, status) = _runs(tmp_path)[0]
    assert status == "running"  # the runner never got to record an end
    (tmp_path / "gate").write_text("open")
    code, summary = run_json(tmp_path, "--resume", run_id)
    assert code == 0, summary
    assert by_label(summary)["detached"]["outputs"] == {"output": 2}
    assert _count(tmp_path / "first.count") == 1
    assert _count(tmp_path / "detached.count") == 2


def test_sigterm_records_the_run_as_interrupted_and_kills_its_steps(tmp_path: Path) -> None:
    ref = make_project(tmp_path, SETSID_STEP.format(root=str(tmp_path)))
    runner = _start(tmp_path, ref, "term")
    wait_for(lambda: (tmp_path / "children").exists(), "the step's children")
    children = _children(tmp_path)
    runner.send_signal(signal.SIGTERM)
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 130, err
    for pid in children:
        wait_for(lambda pid=pid: not alive(pid), f"grandchild {pid} to die")
    _nothing_left("term")
    (run_id, status) = _runs(tmp_path)[0]
    assert status == "interrupted"
    assert f"resume with: pipec run --resume {run_id}" in out.decode()
    assert "detached" in out.decode() and "interrupted" in out.decode()
    (tmp_path / "gate").write_text("open")
    code, summary = run_json(tmp_path, "--resume", run_id)
    assert code == 0, summary
    assert _count(tmp_path / "first.count") == 1
    assert _count(tmp_path / "detached.count") == 2


def test_timeout_kills_grandchildren_in_other_sessions(tmp_path: Path) -> None:
    ref = make_project(
        tmp_path,
        f"""
        @step(timeout=1)
        def hang() -> int:
            child = subprocess.Popen(["setsid", "sleep", "300"])
            Path({str(tmp_path / "child.pid")!r}).write_text(str(child.pid))
            child.wait()
            return 0

        @pipeline
        def hanging() -> None:
            hang()
        """,
    )
    result = run_here(tmp_path, ref)
    assert result.status == "failed"
    assert "timed out" in result.step("hang").reason
    grandchild = int((tmp_path / "child.pid").read_text())
    wait_for(lambda: not alive(grandchild), "the setsid grandchild to die at the timeout")


def test_a_step_ending_does_not_kill_what_a_running_step_started(tmp_path: Path) -> None:
    """Each attempt's processes are its own: a detached process of a step that still runs
    survives another step's end, and goes when its own step ends."""
    daemon = tmp_path / "daemon.pid"
    ref = make_project(
        tmp_path,
        f"""
        @step
        def quick() -> int:
            while not Path({str(daemon)!r}).exists():
                time.sleep(0.02)
            return 1

        @step
        def patient() -> bool:
            # The shell exits at once: its `setsid sleep` is orphaned while this step runs.
            subprocess.run(
                ["sh", "-c", "setsid sleep 300 & echo $! > {daemon}"], check=True
            )
            while not Path({str(tmp_path / "quick.done")!r}).exists():
                time.sleep(0.02)
            os.kill(int(Path({str(daemon)!r}).read_text()), 0)  # raises if it was killed
            return True

        @step
        def mark(x: int) -> None:
            Path({str(tmp_path / "quick.done")!r}).write_text("")

        @pipeline
        def side_by_side() -> None:
            mark(quick())
            patient()
        """,
    )
    result = run_here(tmp_path, ref, parallelism=3)
    assert result.ok, [(s.label, s.reason) for s in result.steps]
    assert result.output("patient") is True
    pid = int(daemon.read_text())
    wait_for(lambda: not alive(pid), "the detached process to end with its step")


def test_a_waiting_worker_killed_from_outside_is_replaced(tmp_path: Path) -> None:
    """The supervisor forks the next attempt's worker ahead; when something kills that waiting
    worker, the next step still starts (in a fresh fork) and the run succeeds."""
    ref = make_project(
        tmp_path,
        """
        def _siblings() -> list[int]:
            found = []
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit() and int(entry.name) != os.getpid():
                    try:
                        stat = (entry / "stat").read_text()
                    except OSError:
                        continue
                    if int(stat.rsplit(")", 1)[1].split()[1]) == os.getppid():
                        found.append(int(entry.name))
            return found

        @step
        def kill_the_spare() -> int:
            deadline = time.monotonic() + 30
            while not (waiting := _siblings()) and time.monotonic() < deadline:
                time.sleep(0.01)
            for pid in waiting:
                os.kill(pid, 9)
            return len(waiting)

        @step
        def next_one(killed: int) -> int:
            return killed + 100

        @pipeline
        def spare_killed() -> None:
            next_one(kill_the_spare())
        """,
    )
    result = run_here(tmp_path, ref)
    assert result.ok, [(s.label, s.reason) for s in result.steps]
    assert result.output("kill_the_spare") == 1  # the waiting worker was there, and was killed
    assert result.output("next_one") == 101


def test_a_kill_during_an_output_write_leaves_no_staging_folder(tmp_path: Path) -> None:
    writing = tmp_path / "writing"
    ref = make_project(
        tmp_path,
        f"""
        class Slow:
            def __reduce__(self):
                Path({str(writing)!r}).write_text("")
                while not Path({str(tmp_path / "gate")!r}).exists():
                    time.sleep(0.05)
                return (Slow, ())

        @step
        def produce() -> Slow:
            return Slow()

        @step
        def use(s: Slow) -> int:
            return 1

        @pipeline
        def slow_write() -> None:
            use(produce())
        """,
    )
    runner = _start(tmp_path, ref, "staging")
    wait_for(writing.exists, "the output write to start")
    (run_id, _) = _runs(tmp_path)[0]
    staging = list((tmp_path / ".pipec" / run_id).rglob(".*.tmp-*"))
    assert staging, "the write was expected to be under way in a staging folder"
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=30)
    _nothing_left("staging")
    (tmp_path / "gate").write_text("open")
    code, summary = run_json(tmp_path, "--resume", run_id)
    assert code == 0, summary
    assert list((tmp_path / ".pipec" / run_id).rglob(".*.tmp-*")) == []
    assert list((tmp_path / ".pipec" / run_id).rglob(".*.old-*")) == []


# ------------------------------------------------------------------ kills at random points

CRASHY = """
def _mark(name: str) -> None:
    with open({root!r} + "/" + name + ".count", "a") as f:
        f.write("x")

@step
def numbers(n: int) -> list[int]:
    _mark("numbers")
    time.sleep(0.1)
    return list(range(n))

@step
def square(x: int) -> int:
    _mark(f"square.{{x}}")
    child = subprocess.Popen(["setsid", "sleep", "300"])
    time.sleep(0.15)
    child.kill()
    child.wait()
    return x * x

@step
def blob(x: int) -> bytes:
    _mark(f"blob.{{x}}")
    return bytes([x % 256]) * 3_000_000

@step
def total(xs: list[int]) -> int:
    _mark("total")
    time.sleep(0.1)
    return sum(xs)

@step
def big(t: int) -> str:
    _mark("big")
    return f"big {{t}}"

@step
def small(t: int) -> str:
    _mark("small")
    return f"small {{t}}"

@pipeline
def crashy(n: int = 5) -> None:
    with foreach(numbers(n)) as x:
        sq = square(x)
        blob(x)
    t = total(collect(sq))
    with when(t > 10):
        big(t)
    with otherwise():
        small(t)
"""

FILE_OF = {"square": "square.{i}", "blob": "blob.{i}"}


def _marker(step: dict[str, Any]) -> str:
    iteration = step["iteration"]
    pattern = FILE_OF.get(step["id"], step["id"])
    return pattern.format(i=iteration[0] if iteration else "")


def _finished(db: Path, run_id: str) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(step, iteration) -> [(uri, hash)] of every step instance the store says finished."""
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT step_id, iteration FROM steps WHERE run_id=? AND status IN ('succeeded', 'cached')",
        (run_id,),
    ).fetchall()
    found: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for step_id, iteration in rows:
        found[(step_id, iteration)] = con.execute(
            "SELECT uri, hash FROM artifacts WHERE run_id=? AND step_id=? AND iteration=?",
            (run_id, step_id, iteration),
        ).fetchall()
    return found


def _check_artifacts(artifacts: list[tuple[str, str]]) -> None:
    for uri, recorded in artifacts:
        meta = store.read_meta(uri)
        assert meta is not None, f"{uri} was recorded but is gone"
        assert meta["hash"] == recorded, f"{uri}: lineage says {recorded}, store {meta['hash']}"


def test_kills_at_random_points_lose_nothing_leave_nothing_and_resume_once(
    tmp_path: Path,
) -> None:
    chance = random.Random(SEED)
    for trial in range(TRIALS):
        root = tmp_path / f"trial{trial}"
        ref = make_project(root, CRASHY.format(root=str(root)))
        token = f"crash-{SEED}-{trial}"
        how = chance.choice([signal.SIGKILL, signal.SIGKILL, signal.SIGTERM])
        delay = chance.uniform(0.0, 2.5)
        where = f"trial {trial} (seed {SEED}): {how.name} {delay:.2f}s into the run"
        runner = _start(root, ref, token)
        wait_for(lambda root=root: bool(_runs(root)), "the run to be recorded")
        time.sleep(delay)
        runner.send_signal(how)
        runner.communicate(timeout=60)
        # Nothing is left running.
        _nothing_left(token)
        (run_id, status) = _runs(root)[0]
        db = root / ".pipec" / "metadata.db"
        # Nothing is lost: every step instance recorded as finished keeps its outputs, and the
        # hashes recorded for them are those of the stored outputs.
        before = _finished(db, run_id)
        for artifacts in before.values():
            _check_artifacts(artifacts)
        counts = {p.name: _count(p) for p in root.glob("*.count")}
        # The run resumes once: steps that finished do not run again.
        code, summary = run_json(root, "--resume", run_id)
        assert code == 0, (where, status, summary)
        steps = by_label(summary)
        assert steps["total"]["outputs"] == {"output": 30}, where
        assert steps["big"]["outputs"] == {"output": "big 30"}, where
        assert steps["small"]["status"] == "skipped", where
        for (step_id, iteration), _ in before.items():
            label = f"{step_id}[{iteration}]" if iteration else step_id
            marker = f"{_marker(steps[label])}.count"
            assert _count(root / marker) == counts.get(marker, 0), (where, label)
        for step in summary["steps"]:
            if step["status"] == "succeeded":
                assert 1 <= _count(root / f"{_marker(step)}.count") <= 2, (where, step["id"])
        for artifacts in _finished(db, run_id).values():
            _check_artifacts(artifacts)
        leftovers = [p for p in (root / ".pipec" / run_id).rglob(".*") if ".tmp-" in p.name]
        assert leftovers == [], where
        again = sqlite3.connect(db).execute("SELECT status FROM runs").fetchall()
        assert again == [("succeeded",)], where
        _nothing_left(token)


def test_the_crash_pipeline_runs_whole_without_kills(tmp_path: Path) -> None:
    """The pipeline of the random kills, run to the end: what each trial's resume must reach."""
    ref = make_project(tmp_path, CRASHY.format(root=str(tmp_path)))
    code, summary = run_json(tmp_path, ref)
    assert code == 0, summary
    steps = by_label(summary)
    assert steps["total"]["outputs"] == {"output": 30}
    assert json.dumps(steps["big"]["outputs"]) == '{"output": "big 30"}'


def test_a_step_that_closes_every_descriptor_is_still_reported(tmp_path: Path) -> None:
    """A worker reports its own end on a pipe it inherited; a step that closed it (daemon-style
    code closes every descriptor) is reported by the supervisor when it finds the worker gone,
    with the right exit code, and the run goes on."""
    ref = make_project(
        tmp_path,
        """
        KEPT: list[object] = []

        import gc

        def _close_all() -> None:
            # Garbage left from before the fork closes its files now, not once their numbers
            # are someone else's (this process inherited a test runner's open files).
            gc.collect()
            gc.disable()
            os.closerange(3, 65536)

        @step
        def close_all() -> int:
            _close_all()
            return 7

        @step
        def close_all_and_fail(x: int) -> int:
            _close_all()
            # Files that get the closed descriptors' numbers, left open: nothing of the
            # worker's is written into them.
            KEPT.extend(open(f"{x}-{i}.txt", "w") for i in range(64))
            raise ValueError(f"failed after {x}, {len(KEPT)} files open")

        @pipeline
        def closing() -> None:
            close_all_and_fail(close_all())
        """,
    )
    result = run_here(tmp_path, ref)
    steps = {s.label: s for s in result.steps}
    assert steps["close_all"].status == "succeeded"
    assert result.output("close_all") == 7
    assert steps["close_all_and_fail"].status == "failed"
    failed = steps["close_all_and_fail"]
    assert failed.reason == "exit code 1"
    assert failed.log_path is not None
    assert "ValueError: failed after 7" in Path(failed.log_path).read_text(encoding="utf-8")
    assert [(tmp_path / f"7-{i}.txt").read_bytes() for i in range(64)] == [b""] * 64
