"""Resume after the runner is killed with SIGKILL; two runs at the same time."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from pathlib import Path

from tests.local_helpers import PIPEC, alive, by_label, make_project, pipec, run_json, wait_for


def _count(path: Path) -> int:
    return len(path.read_text()) if path.exists() else 0


def test_kill_9_then_resume_reruns_only_unfinished_steps(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    ref = make_project(
        tmp_path,
        f"""
        def _mark(name: str) -> None:
            with open({str(tmp_path)!r} + "/" + name + ".count", "a") as f:
                f.write("x")

        @step
        def first() -> int:
            _mark("first")
            return 1

        @step
        def side(x: int) -> int:
            _mark("side")
            return x + 10

        @step
        def slow(x: int) -> int:
            _mark("slow")
            Path({str(tmp_path / "slow.pid")!r}).write_text(str(os.getpid()))
            while not Path({str(gate)!r}).exists():
                time.sleep(0.05)
            return x + 1

        @step
        def last(a: int, b: int) -> int:
            _mark("last")
            return a + b

        @pipeline
        def crashy() -> None:
            f = first()
            last(slow(f), side(f))
        """,
    )
    runner = subprocess.Popen(
        [str(PIPEC), "run", ref, "--view", "plain"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: (tmp_path / "slow.pid").exists(), "slow to start")
    wait_for(lambda: _count(tmp_path / "side.count") == 1, "side to run")
    db = tmp_path / ".pipec" / "metadata.db"
    wait_for(
        lambda: (
            sqlite3.connect(db)
            .execute("SELECT COUNT(*) FROM steps WHERE step_id='side' AND status='succeeded'")
            .fetchone()[0]
            == 1
        ),
        "side to be recorded",
    )
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=30)
    slow_pid = int((tmp_path / "slow.pid").read_text())
    wait_for(lambda: not alive(slow_pid), "the orphaned step to die with its runner")
    (run_id, status) = sqlite3.connect(db).execute("SELECT run_id, status FROM runs").fetchone()
    assert status == "running"  # the runner never got to record an end

    gate.write_text("open")
    code, summary = run_json(tmp_path, "--resume", run_id)
    assert code == 0, summary
    assert summary["run_id"] == run_id and summary["status"] == "succeeded"
    assert by_label(summary)["last"]["outputs"] == {"output": 13}
    counts = {n: _count(tmp_path / f"{n}.count") for n in ("first", "side", "slow", "last")}
    assert counts == {"first": 1, "side": 1, "slow": 2, "last": 1}
    # No half-written outputs were left behind by the killed step.
    leftovers = [p for p in (tmp_path / ".pipec" / run_id).rglob(".*tmp-*")]
    assert leftovers == []


def test_resume_of_a_finished_run_keeps_its_results(tmp_path: Path) -> None:
    ref = make_project(
        tmp_path,
        """
        @step
        def one() -> int:
            return 1

        @pipeline
        def single() -> None:
            one()
        """,
    )
    code, summary = run_json(tmp_path, ref)
    assert code == 0
    code, again = run_json(tmp_path, "--resume", summary["run_id"])
    assert code == 0
    assert by_label(again)["one"]["outputs"] == {"output": 1}


def test_two_runs_at_the_same_time_do_not_corrupt_each_other(tmp_path: Path) -> None:
    ref = make_project(
        tmp_path,
        """
        @step
        def item(i: int, tag: str) -> str:
            time.sleep(0.01)
            return f"{tag}-{i}"

        @step
        def gather(xs: list[str]) -> int:
            return len(xs)

        @pipeline
        def wide(tag: str) -> None:
            with foreach(list(range(25))) as i:
                x = item(i, tag)
            gather(collect(x))
        """,
    )
    runs = [
        subprocess.Popen(
            [str(PIPEC), "run", ref, "--param", f"tag={tag}", "--json", "--view", "quiet"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b", "c")
    ]
    outputs = [proc.communicate(timeout=120) for proc in runs]
    summaries = [json.loads(out) for out, _ in outputs]
    assert [p.returncode for p in runs] == [0, 0, 0], [err for _, err in outputs]
    for tag, summary in zip(("a", "b", "c"), summaries, strict=True):
        steps = by_label(summary)
        assert steps["gather"]["outputs"] == {"output": 25}
        assert steps["item[7]"]["outputs"] == {"output": f"{tag}-7"}
    db = sqlite3.connect(tmp_path / ".pipec" / "metadata.db")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    per_run = dict(db.execute("SELECT run_id, COUNT(*) FROM steps GROUP BY run_id").fetchall())
    assert sorted(per_run.values()) == [26, 26, 26]


def test_resume_refuses_when_the_code_changed(tmp_path: Path) -> None:
    """A run resumed after its code changed would mix two versions under one cache key."""
    ref = make_project(
        tmp_path,
        """
        @step
        def boom() -> int:
            raise RuntimeError("broken")

        @pipeline
        def fragile() -> None:
            boom()
        """,
    )
    code, summary = run_json(tmp_path, ref)
    assert code == 1
    path = tmp_path / ref
    path.write_text(path.read_text().replace('raise RuntimeError("broken")', "return 1"))
    done = pipec(tmp_path, "run", "--resume", summary["run_id"])
    assert done.returncode == 2
    assert "changed since run" in done.stderr and "Traceback" not in done.stderr
    code, fresh = run_json(tmp_path, ref)
    assert code == 0 and by_label(fresh)["boom"]["outputs"] == {"output": 1}


def test_a_run_recorded_by_another_pipec_is_not_resumed(tmp_path: Path) -> None:
    """A run whose stored plan has another plan version says so and how to go on; the cache
    still serves the new run."""
    ref = make_project(
        tmp_path,
        """
        @step
        def boom() -> int:
            raise RuntimeError("broken")

        @pipeline
        def fragile() -> None:
            boom()
        """,
    )
    code, summary = run_json(tmp_path, ref)
    assert code == 1
    db = sqlite3.connect(tmp_path / ".pipec" / "metadata.db")
    (text,) = db.execute("SELECT plan FROM runs WHERE run_id=?", (summary["run_id"],)).fetchone()
    old = {**json.loads(text), "plan_version": 1}
    with db:
        db.execute("UPDATE runs SET plan=? WHERE run_id=?", (json.dumps(old), summary["run_id"]))
    done = pipec(tmp_path, "run", "--resume", summary["run_id"])
    assert done.returncode == 2, done.stderr
    assert "recorded by another version of pipec" in done.stderr
    assert "start a new run" in done.stderr and "Traceback" not in done.stderr
    listed = pipec(tmp_path, "runs", "show", summary["run_id"])
    assert listed.returncode == 0 and "boom" in listed.stdout


def test_resume_keeps_the_runs_no_cache_and_accepts_it(tmp_path: Path) -> None:
    """A run started with --no-cache is resumed without the cache: its unfinished steps run
    instead of being filled from an earlier run; `--resume --no-cache` is accepted."""
    ref = make_project(
        tmp_path,
        f"""
        def _mark(name: str) -> None:
            with open({str(tmp_path)!r} + "/" + name + ".count", "a") as f:
                f.write("x")

        @step
        def first() -> int:
            _mark("first")
            return 1

        @step
        def second(x: int, salt: int) -> int:
            _mark("second")
            if Path({str(tmp_path / "broken")!r}).exists():
                raise RuntimeError("broken")
            return x + 1

        @pipeline
        def twice(salt: int = 0) -> None:
            second(first(), salt)
        """,
    )
    code, _ = run_json(tmp_path, ref)  # fills the cache for both steps
    assert code == 0
    (tmp_path / "broken").write_text("")
    code, summary = run_json(tmp_path, ref, "--no-cache")
    assert code == 1 and by_label(summary)["second"]["status"] == "failed"
    (tmp_path / "broken").unlink()
    code, resumed = run_json(tmp_path, "--resume", summary["run_id"])
    assert code == 0, resumed
    steps = by_label(resumed)
    assert steps["second"]["status"] == "succeeded", steps["second"]
    assert "--no-cache" in steps["second"]["reason"]
    counts = {n: _count(tmp_path / f"{n}.count") for n in ("first", "second")}
    assert counts == {"first": 2, "second": 3}
    # --no-cache on a resume applies to what runs in it: a failed run resumed with it runs the
    # failed step although another run has cached it since.
    (tmp_path / "broken").write_text("")
    code, plain = run_json(tmp_path, ref, "--param", "salt=1")
    assert code == 1 and by_label(plain)["first"]["status"] == "cached"
    (tmp_path / "broken").unlink()
    code, _ = run_json(tmp_path, ref, "--param", "salt=1")
    assert code == 0
    code, again = run_json(tmp_path, "--resume", plain["run_id"], "--no-cache")
    assert code == 0, again
    assert by_label(again)["first"]["status"] == "cached"  # finished in the run: kept
    assert by_label(again)["second"]["status"] == "succeeded"
    assert _count(tmp_path / "second.count") == 6
