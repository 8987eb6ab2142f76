"""Run history after the fact: `pipec.runs`, `runs show|list|lineage|delete|gc`, `artifacts`,
a killed runner shown as interrupted, and stores of the previous schema migrated."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from pipec import runs as history_api
from pipec.backends.runner import schema
from pipec.backends.runner.metadata import MetadataStore
from tests.local_helpers import PIPEC, make_project, pipec, run_json, wait_for

BODY = """
@step
def make(n: int) -> list:
    return list(range(n))

@step
def total(xs: list) -> int:
    print("summing", len(xs))
    return sum(xs)

@step
def double(x: int) -> int:
    return 2 * x

@pipeline
def history(n: int = 4) -> None:
    t = total(make(n))
    double(t)
"""


@pytest.fixture()
def two_runs(tmp_path: Path) -> tuple[Path, str, str, str]:
    """A project with two runs of one pipeline; the second is served from the cache."""
    ref = make_project(tmp_path, BODY)
    code, first = run_json(tmp_path, ref)
    assert code == 0, first
    code, second = run_json(tmp_path, ref)
    assert code == 0, second
    assert {s["status"] for s in second["steps"]} == {"cached"}
    return tmp_path, ref, first["run_id"], second["run_id"]


def test_an_old_runs_outputs_load_from_python(two_runs: tuple[Path, str, str, str]) -> None:
    root, _, first, second = two_runs
    run = history_api.get(first, project=root)
    assert run.status == "succeeded" and run.params == {"n": 4}
    assert run.output("total") == 6
    assert run.output("make") == [0, 1, 2, 3]
    assert [s.label for s in run.steps] == ["make", "total", "double"]
    assert "summing 4" in run.step("total").log()
    latest = history_api.latest("history", project=root)
    assert latest.id == second and latest.output("double") == 12
    with pytest.raises(KeyError, match="no step 'nope'"):
        run.output("nope")
    with pytest.raises(history_api.RunNotFound):
        history_api.get("20000101-000000-abcdef", project=root)


def test_runs_show_prints_outputs_params_and_a_coloured_picture(
    two_runs: tuple[Path, str, str, str],
) -> None:
    root, _, first, second = two_runs
    shown = pipec(root, "runs", "show", first)
    assert shown.returncode == 0, shown.stderr
    assert "outputs" in shown.stdout and "[0,1,2,3]" in shown.stdout
    data = json.loads(pipec(root, "runs", "show", first, "--json").stdout)
    assert data["params"] == {"n": 4}
    picture = pipec(root, "runs", "show", second, "--graph")
    assert picture.returncode == 0, picture.stderr
    assert "cached" in picture.stdout and "flowchart" in picture.stdout
    dot = pipec(root, "runs", "show", first, "--graph", "--format", "dot").stdout
    assert "succeeded" in dot and "digraph" in dot


def test_lineage_names_the_writer_and_the_readers(two_runs: tuple[Path, str, str, str]) -> None:
    root, _, first, second = two_runs
    done = pipec(root, "runs", "lineage", f"{first}/total/output")
    assert done.returncode == 0, done.stderr
    assert f"written by {first} total (output)" in done.stdout
    assert f"read by {first} double as x" in done.stdout
    assert f"reused (cached) by {second} total" in done.stdout
    assert f"<- {root}" in done.stdout  # upstream: make's output, which total read
    data = json.loads(pipec(root, "runs", "lineage", first, "--json").stdout)
    assert len(data) == 3
    unknown = pipec(root, "runs", "lineage", "nothing/here")
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr


def test_artifacts_prints_a_value_and_copies_files(two_runs: tuple[Path, str, str, str]) -> None:
    root, _, first, _ = two_runs
    listed = pipec(root, "artifacts", first, "make")
    assert listed.stdout.startswith("output\t")
    assert json.loads(pipec(root, "artifacts", first, "total", "output").stdout) == 6
    copied = pipec(root, "artifacts", first, "total", "output", "--to", str(root / "out"))
    assert copied.returncode == 0, copied.stderr
    assert (root / "out" / "meta.json").is_file()
    missing = pipec(root, "artifacts", first, "total", "nope")
    assert missing.returncode == 2 and "has no output 'nope'" in missing.stderr


def test_gc_keeps_what_the_kept_run_needs(two_runs: tuple[Path, str, str, str]) -> None:
    root, _, first, second = two_runs
    young = pipec(root, "runs", "gc", "--older-than", "30d")
    assert young.returncode == 0 and "deleted 0 runs" in young.stdout
    bad = pipec(root, "runs", "gc", "--older-than", "soon")
    assert bad.returncode == 2 and "30d, 12h" in bad.stderr
    dry = pipec(root, "runs", "gc", "--keep", "1", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete 1 run" in dry.stdout and first in dry.stdout
    assert history_api.get(first, project=root).status == "succeeded"  # nothing deleted
    done = pipec(root, "runs", "gc", "--keep", "1")
    assert done.returncode == 0, done.stderr
    assert f"kept {root}/.pipec/{first}/total/output: still used by {second}" in done.stdout
    assert not (root / ".pipec" / "logs" / first).exists()
    with pytest.raises(history_api.RunNotFound):
        history_api.get(first, project=root)
    # The kept (cached) run still loads outputs that live in the deleted run's folder.
    assert history_api.get(second, project=root).output("double") == 12
    # Deleting the last user frees them.
    freed = pipec(root, "runs", "delete", second)
    assert freed.returncode == 0 and "kept" not in freed.stdout
    assert not (root / ".pipec" / first).exists()
    assert pipec(root, "runs", "gc").returncode == 2  # says what to give


GATED = """
@step
def wait() -> int:
    Path({pid!r}).write_text(str(os.getpid()))
    while not Path({gate!r}).exists():
        time.sleep(0.05)
    return 1

@pipeline
def gated() -> None:
    wait()
"""


def test_a_running_run_is_never_deleted_and_a_killed_one_is_interrupted(tmp_path: Path) -> None:
    pid, gate = tmp_path / "step.pid", tmp_path / "gate"
    ref = make_project(tmp_path, GATED.format(pid=str(pid), gate=str(gate)))
    runner = subprocess.Popen(
        [str(PIPEC), "run", ref, "--view", "plain"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(pid.exists, "the step to start")
        (run,) = history_api.find(project=tmp_path)
        assert run.status == "running"
        refused = pipec(tmp_path, "runs", "delete", run.id)
        assert refused.returncode == 2 and "is running" in refused.stderr
        skipped = pipec(tmp_path, "runs", "gc", "--keep", "0")
        assert "deleted 0 runs" in skipped.stdout
        assert history_api.get(run.id, project=tmp_path).status == "running"
        runner.send_signal(signal.SIGKILL)
        runner.wait()
    finally:
        gate.touch()
        runner.kill()
        runner.wait()
    listed = json.loads(pipec(tmp_path, "runs", "list", "--json").stdout)
    assert [r["status"] for r in listed] == ["interrupted"]
    only = pipec(tmp_path, "runs", "list", "--status", "interrupted", "--json").stdout
    assert [r["run_id"] for r in json.loads(only)] == [run.id]
    assert json.loads(pipec(tmp_path, "runs", "list", "--status", "running", "--json").stdout) == []
    shown = history_api.get(run.id, project=tmp_path)
    assert shown.step("wait").status == "interrupted"


def test_a_store_of_the_previous_schema_is_migrated(tmp_path: Path) -> None:
    """A version-2 store (no `paused` column, no lineage index) opens, is upgraded in place,
    and its runs read as before."""
    path = tmp_path / "metadata.db"
    db = sqlite3.connect(path)
    db.executescript(schema.SCHEMA)
    db.execute("ALTER TABLE runs ADD COLUMN runner_start TEXT")
    db.execute("ALTER TABLE runs ADD COLUMN runner_role TEXT")
    db.execute("ALTER TABLE runs ADD COLUMN options TEXT")
    db.execute("DROP INDEX artifacts_by_uri")
    db.execute("DROP INDEX runs_by_pipeline")
    db.execute(
        "INSERT INTO runs (run_id, pipeline_name, pipeline_id, started_at, ended_at, status, "
        "params, plan, project_root, artifact_root) VALUES "
        "('20250101-000000-aaaaaa', 'p', 'pid', 10.0, 15.0, 'succeeded', '{}', '{}', '/x', '/y')"
    )
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    store = MetadataStore(path)
    (run,) = store.find_runs()
    assert run.paused == 0.0 and run.running_time(100.0) == 5.0
    store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    assert "paused" in columns
    indexes = {row[1] for row in db.execute("PRAGMA index_list(artifacts)")}
    assert "artifacts_by_uri" in indexes


MANY_FAIL = """
@step
def items() -> list:
    return [1, 2, 3, 4, 5]

@step
def check(x: int) -> int:
    print("checking", x)
    if x > 1:
        raise ValueError(f"x={x} is too big")
    return x

@pipeline
def many() -> None:
    with foreach(items()) as x:
        check(x)
"""


def test_iterations_failing_alike_show_one_log_tail_and_the_exception(tmp_path: Path) -> None:
    ref = make_project(tmp_path, MANY_FAIL)
    done = pipec(tmp_path, "run", ref, "--view", "quiet", env={"COLUMNS": "200"})
    assert done.returncode == 1, done.stderr
    out = done.stdout + done.stderr
    assert out.count("--- last lines of") == 1, out
    assert "step check[1] failed: ValueError: x=2 is too big" in out
    assert "(and 3 more like it: check[2], check[3], check[4])" in out
    run = history_api.latest("many", project=tmp_path)
    assert run.step("check[4]").why == "ValueError: x=5 is too big"


def test_a_resumed_runs_time_leaves_out_the_pause(tmp_path: Path) -> None:
    pid, gate = tmp_path / "step.pid", tmp_path / "gate"
    ref = make_project(tmp_path, GATED.format(pid=str(pid), gate=str(gate)))
    runner = subprocess.Popen(
        [str(PIPEC), "run", ref, "--view", "plain"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_for(pid.exists, "the step to start")
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    (run,) = history_api.find(project=tmp_path)
    db = sqlite3.connect(tmp_path / ".pipec" / "metadata.db")
    # Pretend the crash was an hour ago: the run started then, and its step too.
    db.execute("UPDATE runs SET started_at = started_at - 3600")
    db.execute("UPDATE steps SET started_at = started_at - 3600")
    db.commit()
    db.close()
    gate.touch()
    code, resumed = run_json(tmp_path, "--resume", run.id)
    assert code == 0, resumed
    again = history_api.get(run.id, project=tmp_path)
    assert again.duration is not None and again.duration < 3600, again.duration
    assert again.record.paused >= 3600
