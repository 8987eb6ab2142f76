"""The github target run for real here: `pipec run --target github --set via=act` (act's host
mode, offline) against the local target, both started in the SAME environment (OpenBLAS
variables change floats), compared step by step: status, attempts, JSON outputs and the content
hash of every stored artifact.

Every example runs under act in the conformance suite (tests/conformance/test_run.py: as compiled
by default, fused, and with `--no-optimize` where the optimizer changes it), so it is not repeated
here. Covered here: retries and timeouts kept by the step runtime (a timed-out step's
grandchild that ignores SIGTERM killed), a secret from the environment act is given, a
hostile parameter that arrives verbatim, a fan-out over more items than a GitHub matrix takes
(a clear runtime error), and a foreach inside a foreach (flattened into one matrix) with a
when() inside, compared instance by instance.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipec.backends.runtime import store
from tests.conftest import REPO
from tests.github_check import tool
from tests.helpers import write_pipeline

pytestmark = pytest.mark.slow
PIPEC = str(REPO / ".venv" / "bin" / "pipec")


def run_json(ref: str, cwd: Path, env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [PIPEC, "run", ref, "--json", "--view", "quiet", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout.strip(), done.stderr[-4000:]
    return done.returncode, json.loads(done.stdout)


def comparable(summary: dict[str, Any]) -> dict[tuple[str, tuple[int, ...]], Any]:
    """What must be equal between targets: per step instance, the status, the attempts of a step
    that ran, the JSON outputs and each stored output's content hash."""
    found = {}
    for step in summary["steps"]:
        hashes = {n: (store.read_meta(u) or {}).get("hash") for n, u in step["artifacts"].items()}
        ran = step["status"] in ("succeeded", "failed")
        found[(step["id"], tuple(step["iteration"]))] = (
            step["status"],
            step["attempts"] if ran else None,
            step["outputs"],
            hashes,
        )
    return found


def both(
    ref: str, cwd: Path, env: dict[str, str], *args: str, fuse: bool = True
) -> tuple[Any, Any]:
    """The local run and the act run of REF, in the same environment, both fusing chains or
    neither (github fuses by default, local not; tests/passes/test_local_runs.py shows that
    fused and unfused local runs store the same outputs)."""
    fusing = ["--set", f"fuse={str(fuse).lower()}"]
    code_local, local = run_json(ref, cwd, env, "--no-cache", *fusing, *args)
    code_act, act = run_json(
        ref,
        cwd,
        env,
        "--target",
        "github",
        "--set",
        "via=act",
        "--set",
        f"act={tool('act')}",
        *fusing,
        *args,
    )
    assert code_local == code_act
    return comparable(local), comparable(act)


@pytest.fixture
def env() -> dict[str, str]:
    """This process's environment (nothing stripped), plus the examples' secret."""
    return {**os.environ, "REGISTRY_TOKEN": "token-for-the-example"}


EMPTY_LOOPS = """
@step
def none_at_all() -> list[int]:
    return []

@step
def double(x: int) -> int:
    return 2 * x

@step
def total(xs: list[int]) -> int:
    return sum(xs)

@pipeline
def empty_loops(names: list[str] = []) -> None:
    with foreach(none_at_all()) as x:
        y = double(x=x)
    total(xs=collect(y))
    with foreach(names) as name:
        z = double(x=len_of(name=name))
    total(xs=collect(z))

@step
def len_of(name: str) -> int:
    return len(name)
"""


def test_a_foreach_over_an_empty_list_runs_no_job_and_goes_on(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """GitHub refuses a matrix with no values (act runs it once, without an index): the loop's
    jobs are skipped by their `if:`, and a collect of them is `[]`, as on every target."""
    source = write_pipeline(tmp_path, EMPTY_LOOPS)
    local, act = both(source.name, tmp_path, env)
    assert act == local
    assert local[("total", ())][:3] == local[("total_2", ())][:3] == ("succeeded", 1, {"output": 0})


NESTED_LOOPS = """
@step
def where(x: int) -> str:
    import pipec

    return f"{x} at {pipec.context().iteration}"

@step
def count(texts: list[str]) -> int:
    return len(texts)

@step
def total(counts: list[int]) -> int:
    return sum(counts)

@step
def big(x: int) -> str:
    return f"big {x}"

@step
def numbers(n: int) -> list[int]:
    return list(range(n))

@pipeline
def nested_loops(groups: list[list[int]] = [[1, 7], [], [9]], n: int = 0) -> None:
    with when(n > 0):  # not taken: the foreach over a skipped job's output runs nothing
        with foreach(numbers(n)) as y:
            where.with_options(name="unseen")(x=y)
    with foreach(groups) as group:
        with foreach(group) as x:
            w = where(x=x)
            with when(x > 5):
                big(x=x)
        n = count(collect(w))
    total(collect(n))
"""


def test_a_foreach_inside_a_foreach_equals_the_local_target(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """Flattened into one matrix over `i/j`: each step sees its own (outer, inner) iteration in
    `pipec.context()`, a foreach over the outer item that is `[]` runs nothing there (its steps
    are reported skipped at that outer iteration, as locally), a when() inside is decided per
    iteration, and both collects regroup per outer iteration and over all. (And a foreach over
    the output of a job a branch skipped runs nothing, though act expands its matrix.)"""
    source = write_pipeline(tmp_path, NESTED_LOOPS)
    local, act = both(source.name, tmp_path, env)
    assert act == local
    assert local[("where", (0, 1))][2] == {"output": "7 at (0, 1)"}
    assert local[("where", (1,))][0] == local[("big", (0, 0))][0] == "skipped"
    assert local[("total", ())][2] == {"output": 3}
    assert local[("unseen", ())][0] == "skipped"


PIPELINE = """
import os
from pathlib import Path

@step(retries=2)
def flaky(tag: str) -> str:
    marker = Path(os.environ["FLAKY_DIR"]) / tag
    if not marker.exists():
        marker.write_text("tried")
        raise RuntimeError("the first attempt fails")
    return tag

@step(secrets=["PIPEC_TEST_SECRET"])
def secret_length() -> int:
    return len(os.environ["PIPEC_TEST_SECRET"])

@step
def echo(text: str) -> str:
    return text

@step
def shards(n: int) -> list[str]:
    return [f"s{i}" for i in range(n)]

@step
def size(shard: str) -> int:
    return len(shard)

@step
def total(sizes: list[int]) -> int:
    return sum(sizes)

@pipeline
def mixed(text: str = "plain", n: int = 3, mode: str = "Full") -> None:
    flaky(tag="a")
    secret_length()
    echo(text=text)
    with foreach(shards(n=n)) as s:
        k = size(shard=s)
    t = total(sizes=collect(k))
    with when((t > 5) & (mode == "full")):
        echo(text="big and full")
    with otherwise():
        echo(text="otherwise")
"""
HOSTILE = "${{ secrets.PIPEC_TEST_SECRET }} $(touch pwned) `id` 'q\" \\ \n\u2028 é ✓ }}"


def test_retries_secrets_hostile_values_and_fan_out_equal_the_local_target(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """`mode == "full"` against "Full" is false in Python; GitHub's `==` ignores case, so the
    target decides it in a `-test` job."""
    source = write_pipeline(tmp_path, PIPELINE)
    flaky_dir = tmp_path / "flaky"
    env = {**env, "FLAKY_DIR": str(flaky_dir), "PIPEC_TEST_SECRET": "s3cret-value"}
    results = []
    for target_args in (
        [],
        [
            "--target",
            "github",
            "--set",
            "via=act",
            "--set",
            f"act={tool('act')}",
            "--set",
            f"artifact_root={tmp_path / 'store'}",
        ],
    ):
        shutil.rmtree(flaky_dir, ignore_errors=True)
        flaky_dir.mkdir()
        code, summary = run_json(
            str(source), tmp_path, env, "--param", f"text={HOSTILE}", "--param", "n=4", *target_args
        )
        assert code == 0
        results.append(comparable(summary))
    local, act = results
    assert act == local
    assert act[("flaky", ())][1] == 2  # the step runtime retried it in the job
    assert act[("echo", ())][2] == {"output": HOSTILE}
    assert act[("secret_length", ())][2] == {"output": len("s3cret-value")}
    assert act[("echo_3", ())][2] == {"output": "otherwise"}
    assert not (tmp_path / "pwned").exists()


TIMEOUT_PIPELINE = """
import os, signal, subprocess, sys, time
from pathlib import Path

@step(timeout=2, retries=1)
def stuck(pidfile: str) -> int:
    code = "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " + (
        "os.setsid(); time.sleep(3600)"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    with open(pidfile, "a") as handle:
        handle.write(f"{child.pid}\\n")
    time.sleep(3600)
    return 1

@pipeline
def stalls(pidfile: str) -> None:
    stuck(pidfile=pidfile)
"""


def gone(pid: int) -> bool:
    """No such process, or only its exit status is left (a zombie holds nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_a_timed_out_step_is_killed_and_retried_as_on_the_local_target(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """GitHub keeps no step timeout and has no retries: the step runtime keeps both. Each attempt
    is killed at its timeout with a grandchild that ignores SIGTERM and left its session."""
    source = write_pipeline(tmp_path, TIMEOUT_PIPELINE)
    act_args = ["--target", "github", "--set", "via=act", "--set", f"act={tool('act')}"]
    act_args += ["--set", f"artifact_root={tmp_path / 'store'}"]
    results = []
    for target_args in ([], act_args):
        pidfile = tmp_path / "pids"
        pidfile.unlink(missing_ok=True)
        code, summary = run_json(
            str(source), tmp_path, env, "--param", f"pidfile={pidfile}", *target_args
        )
        assert code == 1
        results.append(comparable(summary))
        grandchildren = [int(pid) for pid in pidfile.read_text().split()]
        assert len(grandchildren) == 2  # one per attempt
        for pid in grandchildren:
            assert gone(pid), f"{pid} outlived its timed-out step"
    local, act = results
    assert act == local
    assert act[("stuck", ())][:2] == ("failed", 2)


def test_a_fan_out_over_more_than_256_items_fails_clearly(
    tmp_path: Path, env: dict[str, str]
) -> None:
    source = write_pipeline(
        tmp_path,
        """
        @step
        def many() -> list[int]:
            return list(range(300))

        @step
        def one(x: int) -> int:
            return x

        @pipeline
        def wide() -> None:
            with foreach(many()) as x:
                one(x=x)
        """,
    )
    code, summary = run_json(
        str(source),
        tmp_path,
        env,
        "--target",
        "github",
        "--set",
        "via=act",
        "--set",
        f"act={tool('act')}",
    )
    assert code == 1
    failed = {s["id"]: s for s in summary["steps"]}["many"]
    assert failed["status"] == "failed"
    log = Path(failed["log"]).read_text(encoding="utf-8")
    assert "has 300 items; a GitHub matrix expands at most 256 jobs" in log


def test_a_missing_secret_is_one_line_before_anything_runs(
    tmp_path: Path, env: dict[str, str]
) -> None:
    source = write_pipeline(tmp_path, PIPELINE)
    env = {k: v for k, v in env.items() if k != "PIPEC_TEST_SECRET"}
    done = subprocess.run(
        [
            PIPEC,
            "run",
            str(source),
            "--target",
            "github",
            "--set",
            "via=act",
            "--set",
            f"act={tool('act')}",
        ],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: secret PIPEC_TEST_SECRET not set: export it or add to {tmp_path / '.env'}"
    ]
