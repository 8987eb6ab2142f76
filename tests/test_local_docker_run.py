"""local_docker runs real containers on the local engine (network none): the examples give the
local target's outputs, and secrets, env, retries, timeouts, OOM kills, kill -9 and Ctrl-C behave
as the target promises, leaving no container behind.

Runs that are compared are made in the same process environment (`CLEAN_ENV`, nothing
inherited from whoever runs the tests), so no variable on one side only can change a float.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipec.backends.images.engine import Engine
from tests.conftest import REPO
from tests.local_helpers import (
    DUMPABLE,
    PIPEC,
    by_label,
    ctrl_c_as_in_a_terminal,
    ended_or_explained,
    make_project,
    wait_for,
)
from tests.test_local_docker import (
    BASE,
    ONE_STEP,
    QUIET,
    build_image,
    engine_ready,
    one_line_exit_2,
    run_containers,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TOKEN = "tok-3f9a-do-not-print"
CLEAN_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": os.environ.get("HOME", "/root"),
    "LANG": "C.UTF-8",
}
DOCKER = ("--target", "local_docker", "--set", f"base_image={BASE}", "--set", "network=none")


STARTED: list[subprocess.Popen[str]] = []
"""Runners a test started in the background (see `_stop_leftover_runners`)."""


@pytest.fixture(scope="module")
def engine() -> Engine:
    return engine_ready()


@pytest.fixture(autouse=True)
def _stop_leftover_runners() -> Iterator[None]:
    """A test that fails while its runner waits at a gate leaves no runner (nor container)
    behind: Ctrl-C stops the run and removes its containers."""
    yield
    while STARTED:
        runner = STARTED.pop()
        if runner.poll() is None:
            runner.send_signal(signal.SIGINT)
            try:
                runner.wait(timeout=120)
            except subprocess.TimeoutExpired:
                runner.kill()
                runner.wait()


def _background(root: Path, *args: str, output: bool) -> subprocess.Popen[str]:
    """`pipec ARGS` in `root`, not waited for (stdout and stderr kept when `output`; else
    stderr goes to `root/runner.err`, for `ended_or_explained`)."""
    kept = subprocess.PIPE if output else subprocess.DEVNULL
    errors = subprocess.PIPE if output else (root / "runner.err").open("w")
    runner = subprocess.Popen(
        [str(PIPEC), *args],
        cwd=root,
        stdout=kept,
        stderr=errors,
        text=True,
        env={**CLEAN_ENV, **DUMPABLE},
        preexec_fn=ctrl_c_as_in_a_terminal,
    )
    STARTED.append(runner)
    return runner


def _pipec(
    root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PIPEC), *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**CLEAN_ENV, **(env or {})},
        check=False,
    )


def _json(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, Any, str]:
    """`pipec run ARGS --json --view quiet`: (exit code, summary, stderr)."""
    done = _pipec(root, "run", *args, "--json", *QUIET, env=env)
    try:
        return done.returncode, json.loads(done.stdout), done.stderr
    except json.JSONDecodeError as exc:
        raise AssertionError(f"stdout is not JSON: {done.stdout!r}\n{done.stderr}") from exc


def _results(summary: dict[str, Any]) -> dict[str, tuple[str, Any, dict[str, str]]]:
    """Step label -> (status, JSON outputs, content hash of every output)."""
    found = {}
    for label, step in by_label(summary).items():
        hashes = {}
        for name, uri in step["artifacts"].items():
            meta = json.loads((Path(uri) / "meta.json").read_text(encoding="utf-8"))
            hashes[name] = meta["hash"]
        found[label] = (step["status"], step["outputs"], hashes)
    return found


def _project(root: Path) -> Path:
    """The examples as a project of their own, configured for this engine."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "examples", root / "examples")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "examples"\n\n[tool.pipec.targets.local_docker]\n'
        f'base_image = "{BASE}"\nrequirements = ["scikit-learn>=1.4"]\nnetwork = "none"\n',
        encoding="utf-8",
    )
    # training.py's `train` asks for a GPU model and an image of a registry this machine cannot
    # reach; its other features (secrets, env, retries, timeout, cpu/memory) run here.
    training = root / "examples" / "training.py"
    text = training.read_text(encoding="utf-8")
    text = text.replace('    image="ghcr.io/acme/train:1.4",\n', "")
    text = text.replace(', gpu=1, gpu_type="nvidia-l4"', "")
    assert "gpu" not in text.split("def train")[0].rsplit("@step", 1)[1]
    training.write_text(text, encoding="utf-8")
    return root


# Every example runs on local_docker in the conformance suite (tests/conformance/test_run.py);
# training there is refused as written (a GPU model), so here it runs without one.
@pytest.mark.parametrize("example", ["training"])
def test_an_example_gives_the_local_targets_outputs(
    engine: Engine, tmp_path: Path, example: str
) -> None:
    root = _project(tmp_path / "project")
    ref = f"examples/{example}.py"
    env = {"REGISTRY_TOKEN": TOKEN}
    code, local, err = _json(root, ref, "--no-cache", env=env)
    assert code == 0, err
    code, docker, err = _json(root, ref, "--target", "local_docker", "--no-cache", env=env)
    assert code == 0, err
    assert _results(docker) == _results(local)
    assert [image["origin"] for image in docker["images"]] == [f"built from {BASE}"]
    assert run_containers(engine, docker["run_id"]) == []


def test_training_as_written_is_refused_before_anything_runs(
    engine: Engine, tmp_path: Path
) -> None:
    root = tmp_path / "project"
    shutil.copytree(REPO / "examples", root / "examples")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    done = _pipec(root, "run", "examples/training.py", *DOCKER, *QUIET)
    assert done.returncode == 2
    assert "cannot express a GPU type (Docker requests GPUs by count only)" in done.stderr
    assert not (root / ".pipec" / "metadata.db").exists()


SECRETS = """
@step(secrets=["PIPEC_TEST_TOKEN"], env={{"STAGE": "a$HOME b", "EMPTY": ""}})
def use() -> str:
    print("token", os.environ["PIPEC_TEST_TOKEN"], flush=True)
    while not Path({gate!r}).exists():
        time.sleep(0.05)
    in_first_process = os.environ["PIPEC_TEST_TOKEN"] in Path("/proc/1/environ").read_text()
    dotenv = Path(".env").read_text()
    return f"{{os.environ['STAGE']}}|{{os.environ['EMPTY']}}|{{in_first_process}}|{{dotenv!r}}"

@pipeline
def secretive() -> None:
    use()
"""


def test_secrets_reach_the_step_only(engine: Engine, tmp_path: Path) -> None:
    """The value is in the step's environment and nowhere else: not in the container's
    configuration or labels, not in its first process, not in the log, not in the metadata; the
    project's `.env` (where this one comes from) is hidden from steps."""
    gate = tmp_path / "gate"
    ref = make_project(tmp_path, SECRETS.format(gate=str(gate)))
    (tmp_path / ".env").write_text(f"PIPEC_TEST_TOKEN={TOKEN}\nOTHER=kept-away\n")
    runner = _background(tmp_path, "run", ref, *DOCKER, "--json", *QUIET, output=True)
    db = tmp_path / ".pipec" / "metadata.db"

    def running_step() -> list[str]:
        try:
            row = sqlite3.connect(db).execute("SELECT run_id FROM runs").fetchone()
        except sqlite3.OperationalError:  # the runner has created the file, not its tables yet
            return []
        if row is None:
            return []
        return run_containers(engine, row[0], running_only=True)

    wait_for(lambda: db.exists() and bool(running_step()), "the step to start", limit=300)
    seen = engine.api.inspect_container(running_step()[0])
    assert TOKEN not in json.dumps(seen)
    assert seen["Config"]["Labels"]["pipec.step"] == "use"
    assert seen["HostConfig"]["NetworkMode"] == "none"
    gate.write_text("open")
    out, err = runner.communicate(timeout=300)
    assert runner.returncode == 0, err
    summary = json.loads(out)
    assert by_label(summary)["use"]["outputs"] == {"output": "a$HOME b||False|''"}
    log = Path(by_label(summary)["use"]["log"]).read_text(encoding="utf-8")
    assert "token ***" in log and TOKEN not in log
    assert TOKEN.encode() not in (tmp_path / ".pipec" / "metadata.db").read_bytes()
    shown = _pipec(tmp_path, "logs", summary["run_id"], "use")
    assert "token ***" in shown.stdout and TOKEN not in shown.stdout
    assert run_containers(engine, summary["run_id"]) == []


FAILURES = """
@step(retries=2)
def flaky() -> int:
    if os.environ["PIPEC_ATTEMPT"] != "3":
        raise RuntimeError("attempt " + os.environ["PIPEC_ATTEMPT"] + " fails")
    return 3

@step(timeout="2s")
def slow() -> int:
    time.sleep(600)
    return 1

@step(resources=Resources(memory="64Mi"))
def hog() -> int:
    block = bytearray(400 * 1024 * 1024)
    return len(block)

@pipeline
def rough() -> None:
    flaky()
    slow()
    hog()
"""


def test_retries_timeouts_and_the_oom_killer(engine: Engine, tmp_path: Path) -> None:
    ref = make_project(tmp_path, FAILURES)
    code, summary, _ = _json(tmp_path, ref, *DOCKER)
    assert code == 1
    steps = by_label(summary)
    assert (steps["flaky"]["status"], steps["flaky"]["attempts"]) == ("succeeded", 3)
    assert steps["flaky"]["outputs"] == {"output": 3}
    log = Path(steps["flaky"]["log"]).read_text(encoding="utf-8")
    assert "attempt 1 fails" in log and "--- pipec: attempt 3 ---" in log
    assert steps["slow"]["status"] == "failed"
    assert steps["slow"]["reason"] == "timed out after 2s (container killed and removed)"
    assert steps["hog"]["status"] == "failed"
    assert steps["hog"]["reason"] == "killed by the OOM killer (memory limit 64Mi)"
    assert run_containers(engine, summary["run_id"]) == []
    shown = _pipec(tmp_path, "runs", "show", summary["run_id"])
    hint = f"resume with: pipec run --resume {summary['run_id']} --target local_docker"
    assert hint in shown.stdout, shown.stdout


GATED = """
def _mark(name: str) -> None:
    marks = Path(".pipec") / "marks"
    marks.mkdir(parents=True, exist_ok=True)
    with open(marks / name, "a") as f:
        f.write("x")

@step
def first() -> int:
    _mark("first")
    return 1

@step
def slow(x: int) -> int:
    _mark("slow")
    while not Path({gate!r}).exists():
        time.sleep(0.05)
    return x + 1

@step
def side(x: int) -> int:
    _mark("side")
    return x + 10

@pipeline
def gated() -> None:
    f = first()
    slow(f)
    side(f)
"""


def _marks(root: Path) -> dict[str, int]:
    folder = root / ".pipec" / "marks"
    return {p.name: len(p.read_text()) for p in folder.iterdir()} if folder.is_dir() else {}


def _start_gated(tmp_path: Path, engine: Engine, *more: str) -> tuple[subprocess.Popen[str], str]:
    gate = tmp_path / "gate"
    ref = make_project(tmp_path, GATED.format(gate=str(gate)))
    runner = _background(tmp_path, "run", ref, *DOCKER, *more, "--view", "plain", output=False)
    wait_for(lambda: _marks(tmp_path).get("slow") == 1, "slow to start", limit=300)
    wait_for(lambda: _marks(tmp_path).get("side") == 1, "side to run", limit=300)
    db = tmp_path / ".pipec" / "metadata.db"
    (run_id,) = sqlite3.connect(db).execute("SELECT run_id FROM runs").fetchone()
    return runner, run_id


def test_kill_9_stops_the_containers_and_resume_finishes(engine: Engine, tmp_path: Path) -> None:
    runner, run_id = _start_gated(tmp_path, engine)
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
    # The step's stdin was the runner's: with the runner gone, the launcher ends the step.
    wait_for(lambda: not run_containers(engine, run_id, running_only=True), "no container to run")
    (tmp_path / "gate").write_text("open")
    # The local target's executor never continues it: its steps would run outside containers.
    done = _pipec(tmp_path, "run", "--resume", run_id, *QUIET)
    one_line_exit_2(done, "runs on target local_docker, not local", "--target local_docker`")
    code, summary, err = _json(tmp_path, "--resume", run_id, "--target", "local_docker")
    assert code == 0, err
    assert by_label(summary)["slow"]["outputs"] == {"output": 2}
    assert _marks(tmp_path) == {"first": 1, "side": 1, "slow": 2}
    assert run_containers(engine, run_id) == []  # what the killed runner left is gone too


def test_resume_without_the_runs_image_is_one_line_and_keeps_the_run(
    engine: Engine, tmp_path: Path
) -> None:
    """The image a killed run used was removed meanwhile: resuming says so in one line, before
    any container starts, and leaves the run to be resumed (or started anew) later."""
    warm = tmp_path / "warm"
    code, summary, err = _json(warm, make_project(warm, ONE_STEP), *DOCKER)
    assert code == 0, err
    built = summary["images"][0]["image"]
    # An image of this test's own (its own id), so removing it touches no other run.
    own = f"pipec-test-gone:{tmp_path.name.lower()}"
    build_image(engine, own, f"FROM {built}\nLABEL pipec.test={tmp_path.name}\n", {})
    project = tmp_path / "project"
    runner, run_id = _start_gated(project, engine, "--set", f"image={own}")
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=30)
    wait_for(lambda: not run_containers(engine, run_id, running_only=True), "no container to run")
    left = run_containers(engine, run_id)
    engine.api.remove_image(own, force=True)
    for _ in range(2):  # the first refusal released the run: the second says the same
        done = _pipec(project, "run", "--resume", run_id, "--target", "local_docker", *QUIET)
        one_line_exit_2(done, "of this run is no longer on this Docker engine", "new run")
    assert run_containers(engine, run_id) == left  # nothing started, nothing swept
    engine.remove_run_containers(run_id)


def test_ctrl_c_leaves_no_container(engine: Engine, tmp_path: Path) -> None:
    runner, run_id = _start_gated(tmp_path, engine)
    time.sleep(0.2)
    runner.send_signal(signal.SIGINT)
    code, err = ended_or_explained(runner, 120, tmp_path / "runner.err")
    assert code == 130, err
    assert run_containers(engine, run_id) == []
    status = sqlite3.connect(tmp_path / ".pipec" / "metadata.db").execute(
        "SELECT status FROM runs WHERE run_id=?", (run_id,)
    )
    assert status.fetchone() == ("interrupted",)


EDITABLE = """
@step
def answer() -> str:
    return "{text}:" + __file__

@pipeline
def editable() -> None:
    answer()
"""


def test_editing_a_step_builds_nothing_and_the_summary_says_so(
    engine: Engine, tmp_path: Path
) -> None:
    ref = make_project(tmp_path, EDITABLE.format(text="before"))
    code, first, _ = _json(tmp_path, ref, *DOCKER)
    assert code == 0
    source = tmp_path / ref
    source.write_text(source.read_text().replace('"before:"', '"after:"'))
    done = _pipec(tmp_path, "run", ref, *DOCKER, "--view", "plain")
    assert done.returncode == 0, done.stderr
    assert re.search(r"image pipec-step:\w+ \(built from pipec-base\): reused", done.stderr)
    code, again, _ = _json(tmp_path, ref, *DOCKER)
    assert code == 0
    [image] = again["images"]
    assert (image["built"], image["image"]) == (False, first["images"][0]["image"])
    step = by_label(again)["answer"]
    assert step["outputs"] == {"output": f"after:{source}"}  # the mounted code, as edited
    assert step["status"] == "cached"  # the run just before already ran the edited code


def test_baked_code_runs_from_the_image_and_a_change_is_a_new_image(
    engine: Engine, tmp_path: Path
) -> None:
    ref = make_project(tmp_path, EDITABLE.format(text="baked"))
    code, first, err = _json(tmp_path, ref, *DOCKER, "--set", "code=bake")
    assert code == 0, err
    assert by_label(first)["answer"]["outputs"] == {"output": f"baked:/opt/pipec/code/{ref}"}
    source = tmp_path / ref
    source.write_text(source.read_text().replace('"baked:"', '"rebaked:"'))
    code, second, err = _json(tmp_path, ref, *DOCKER, "--set", "code=bake")
    assert code == 0, err
    assert second["images"][0]["image"] != first["images"][0]["image"]
    assert by_label(second)["answer"]["outputs"] == {"output": f"rebaked:/opt/pipec/code/{ref}"}


def test_a_container_the_engine_refuses_fails_its_step(engine: Engine, tmp_path: Path) -> None:
    ref = make_project(
        tmp_path,
        """
        @step(resources=Resources(memory="1Mi"))
        def tiny() -> int:
            return 1

        @pipeline
        def refused() -> None:
            tiny()
        """,
    )
    code, summary, _ = _json(tmp_path, ref, *DOCKER)
    assert code == 1
    step = by_label(summary)["tiny"]
    assert step["reason"].startswith("the engine could not start the container:"), step
    assert "memory" in step["reason"].lower()
    assert "the engine could not start the container" in Path(step["log"]).read_text()
    assert run_containers(engine, summary["run_id"]) == []
