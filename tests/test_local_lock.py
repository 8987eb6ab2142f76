"""One owner per run: concurrent `--resume` of one run, a live owner, and a stale one."""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from pipec.backends.runner import owner
from pipec.backends.runner.metadata import MetadataStore
from pipec.backends.runner.records import RunRecord
from tests.local_helpers import PIPEC, by_label, make_project, pipec, run_json, wait_for

RESUMERS = 4


def _count(path: Path) -> int:
    return len(path.read_text()) if path.exists() else 0


def _gated_project(root: Path) -> str:
    """`first` -> `gated`: gated fails while `broken` exists and waits while `gate` is absent."""
    return make_project(
        root,
        f"""
        def _mark(name: str) -> None:
            with open({str(root)!r} + "/" + name + ".count", "a") as f:
                f.write("x")

        @step
        def first() -> int:
            _mark("first")
            return 1

        @step
        def gated(x: int) -> int:
            _mark("gated")
            if Path({str(root / "broken")!r}).exists():
                raise RuntimeError("broken")
            while not Path({str(root / "gate")!r}).exists():
                time.sleep(0.05)
            return x + 1

        @pipeline
        def locked() -> None:
            gated(first())
        """,
    )


def _failed_run(root: Path) -> str:
    ref = _gated_project(root)
    (root / "broken").write_text("")
    code, summary = run_json(root, ref)
    assert code == 1, summary
    (root / "broken").unlink()
    return str(summary["run_id"])


def test_concurrent_resumes_of_one_run_have_one_owner(tmp_path: Path) -> None:
    run_id = _failed_run(tmp_path)
    procs = [
        subprocess.Popen(
            [str(PIPEC), "run", "--resume", run_id, "--view", "quiet"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(RESUMERS)
    ]
    # Either the others were turned away, or (the defect) more than one resume runs `gated`.
    wait_for(
        lambda: (
            sum(p.poll() is not None for p in procs) == RESUMERS - 1
            or _count(tmp_path / "gated.count") > 2
        ),
        "the other resumes to be turned away",
    )
    (tmp_path / "gate").write_text("open")
    ends = [p.communicate(timeout=120) for p in procs]
    # Every step ran once per owner: `gated` once in the failed run and once in the resume.
    assert _count(tmp_path / "first.count") == 1
    assert _count(tmp_path / "gated.count") == 2, ends
    codes = sorted(p.returncode for p in procs)
    assert codes == [0] + [2] * (RESUMERS - 1), ends
    refused = [err for p, (_, err) in zip(procs, ends, strict=True) if p.returncode == 2]
    for err in refused:
        assert f"run {run_id} is being resumed by pid" in err, err
        assert "Traceback" not in err
    db = sqlite3.connect(tmp_path / ".pipec" / "metadata.db")
    assert db.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone() == (
        "succeeded",
    )


def test_a_run_in_progress_is_not_resumed(tmp_path: Path) -> None:
    ref = _gated_project(tmp_path)
    runner = subprocess.Popen(
        [str(PIPEC), "run", ref, "--view", "quiet"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _count(tmp_path / "gated.count") == 1, "gated to start")
        (run_id,) = (
            sqlite3.connect(tmp_path / ".pipec" / "metadata.db")
            .execute("SELECT run_id FROM runs")
            .fetchone()
        )
        done = pipec(tmp_path, "run", "--resume", run_id)
        assert done.returncode == 2, done.stderr
        assert f"run {run_id} is being run by pid {runner.pid}" in done.stderr
        assert _count(tmp_path / "gated.count") == 1
    finally:
        (tmp_path / "gate").write_text("open")
        assert runner.wait(timeout=120) == 0


def test_a_stale_owner_is_taken_over_even_when_its_pid_was_reused(tmp_path: Path) -> None:
    """A runner killed with SIGKILL leaves its lock; a process that later got its pid does not
    hold the run (its start time differs), so the resume takes the run over."""
    ref = _gated_project(tmp_path)
    runner = subprocess.Popen(
        [str(PIPEC), "run", ref, "--view", "quiet"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: _count(tmp_path / "gated.count") == 1, "gated to start")
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=30)
    db = sqlite3.connect(tmp_path / ".pipec" / "metadata.db")
    (run_id, status, host) = db.execute("SELECT run_id, status, runner_host FROM runs").fetchone()
    assert status == "running" and host == socket.gethostname()
    # Another process now has the dead runner's pid (as far as the store can tell).
    squatter = subprocess.Popen(["sleep", "300"])
    try:
        with db:
            db.execute("UPDATE runs SET runner_pid=? WHERE run_id=?", (squatter.pid, run_id))
        (tmp_path / "gate").write_text("open")
        code, summary = run_json(tmp_path, "--resume", run_id)
        assert code == 0, summary
        assert by_label(summary)["gated"]["outputs"] == {"output": 2}
        assert _count(tmp_path / "first.count") == 1
    finally:
        squatter.kill()
        squatter.wait()


def _claim(db: Path, start: Any, done: Any, answers: Any) -> None:
    """In a child process: claim the run as soon as every claimant is ready; report the holder
    that turned this one away (None: this one won), and stay alive until all have answered."""
    store = MetadataStore(db)
    start.wait()
    holder = store.claim_run("r1", owner.current("resume"))
    answers.put((multiprocessing.current_process().pid, None if holder is None else holder.pid))
    done.wait()


def test_claims_at_the_same_instant_have_one_winner(tmp_path: Path) -> None:
    db = tmp_path / "metadata.db"
    MetadataStore(db).create_run(
        RunRecord(
            run_id="r1",
            pipeline_id="p",
            pipeline_name="p",
            status="failed",
            started_at=time.time(),
            ended_at=time.time(),
            params={},
            plan="{}",
            project_root=str(tmp_path),
            artifact_root=str(tmp_path),
        )
    )
    fork = multiprocessing.get_context("fork")
    claimants = 8
    start, done, answers = fork.Barrier(claimants), fork.Event(), fork.Queue()
    procs = [fork.Process(target=_claim, args=(db, start, done, answers)) for _ in range(claimants)]
    for proc in procs:
        proc.start()
    found = [answers.get(timeout=120) for _ in procs]
    done.set()
    for proc in procs:
        proc.join(timeout=60)
    winners = [pid for pid, holder in found if holder is None]
    assert len(winners) == 1, found
    assert all(holder == winners[0] for _, holder in found if holder is not None), found


def test_a_run_held_on_another_host_is_refused_until_unlocked(tmp_path: Path) -> None:
    """pipec cannot tell whether a process on another host still runs: the run stays held until
    someone who knows it is gone says so with `pipec runs unlock`."""
    run_id = _failed_run(tmp_path)
    db = sqlite3.connect(tmp_path / ".pipec" / "metadata.db")
    with db:
        db.execute(
            "UPDATE runs SET runner_pid=4242, runner_host='elsewhere', runner_start='b:1', "
            "runner_role='resume' WHERE run_id=?",
            (run_id,),
        )
    (tmp_path / "gate").write_text("open")
    done = pipec(tmp_path, "run", "--resume", run_id)
    assert done.returncode == 2, done.stderr
    assert f"run {run_id} is being resumed by pid 4242 on host elsewhere" in done.stderr
    assert f"pipec runs unlock {run_id}" in done.stderr
    unlocked = pipec(tmp_path, "runs", "unlock", run_id)
    assert unlocked.returncode == 0, unlocked.stderr
    assert "held by pid 4242 on elsewhere" in unlocked.stdout
    again = pipec(tmp_path, "runs", "unlock", run_id)
    assert again.returncode == 2 and "not held" in again.stderr
    code, summary = run_json(tmp_path, "--resume", run_id)
    assert code == 0, summary
    assert _count(tmp_path / "gated.count") == 2


def test_unlock_refuses_a_holder_that_is_alive(tmp_path: Path) -> None:
    ref = _gated_project(tmp_path)
    runner = subprocess.Popen(
        [str(PIPEC), "run", ref, "--view", "quiet"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _count(tmp_path / "gated.count") == 1, "gated to start")
        (run_id,) = sqlite3.connect(tmp_path / ".pipec" / "metadata.db").execute(
            "SELECT run_id FROM runs"
        ).fetchone()
        done = pipec(tmp_path, "runs", "unlock", run_id)
        assert done.returncode == 2
        assert f"is being run by pid {runner.pid}" in done.stderr
    finally:
        (tmp_path / "gate").write_text("open")
        assert runner.wait(timeout=120) == 0
