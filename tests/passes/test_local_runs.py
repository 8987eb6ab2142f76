"""Optimized, unoptimized and fused runs on the local target store the same outputs; the steps the
optimizer left alone keep their cache keys (no spurious misses); a failing member of a fused chain
is named with the user's line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipec import driver
from pipec.backends.base import RunOptions
from tests.airflow_helpers import stored_outputs
from tests.conftest import EXAMPLES
from tests.local_helpers import make_project, pipec, run_json
from tests.passes.equivalence import OPTIMIZABLE, as_written

MODES = {"unoptimized": ["--no-optimize"], "optimized": [], "fused": ["--set", "fuse=true"]}


def _run(root: Path, ref: str, mode: str, artifacts: Path) -> dict[str, str]:
    """Run REF in `mode` (no cache, own artifact root); its outputs as the user wrote the steps."""
    extra = MODES[mode]
    code, summary = run_json(
        root,
        ref,
        "--no-cache",
        "--set",
        f"artifact_root={artifacts}",
        *extra,
        # The examples' secrets: training.py's and etl.py's.
        env={"REGISTRY_TOKEN": "token", "WAREHOUSE_TOKEN": "token"},
    )
    assert code == 0, summary
    outputs = stored_outputs(artifacts / summary["run_id"])
    if mode == "unoptimized":
        return outputs
    settings = [s for s in extra if s != "--set"]
    compiled = driver.prepare(str(root / ref), "local", settings)
    return as_written(outputs, compiled.pipeline, compiled.rewrites)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("optimizable")
    return root, make_project(root, OPTIMIZABLE)


def test_the_optimizer_has_work_in_this_pipeline(project: tuple[Path, str]) -> None:
    root, ref = project
    compiled = driver.prepare(str(root / ref), "local", ["fuse=true"])
    assert {r.rule for r in compiled.rewrites} == {"fold", "prune", "cse", "fuse"}


@pytest.mark.parametrize("mode", ["optimized", "fused"])
def test_runs_store_the_same_outputs(project: tuple[Path, str], tmp_path: Path, mode: str) -> None:
    root, ref = project
    expected = _run(root, ref, "unoptimized", tmp_path / "plain")
    assert _run(root, ref, mode, tmp_path / mode) == expected


@pytest.mark.parametrize("example", [p.name for p in EXAMPLES])
def test_examples_fused_store_the_same_outputs(tmp_path: Path, example: str) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "t"\n', encoding="utf-8")
    source = Path(EXAMPLES[0]).parent / example
    (root / example).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    expected = _run(root, example, "unoptimized", tmp_path / "plain")
    assert _run(root, example, "fused", tmp_path / "fused") == expected


def test_unchanged_steps_keep_their_cache_keys(project: tuple[Path, str]) -> None:
    root, ref = project
    code, first = run_json(root, ref, "--no-optimize")
    assert code == 0
    code, second = run_json(root, ref)
    assert code == 0
    by_id = {(s["id"], tuple(s["iteration"])): s for s in second["steps"]}
    assert by_id, second
    for step in first["steps"]:
        key = (step["id"], tuple(step["iteration"]))
        if key not in by_id or step["status"] != "succeeded":
            continue  # merged away or never run
        again = by_id[key]
        if again["id"] == "publish" or again["id"].startswith("publish_"):
            assert again["status"] == "succeeded"  # cache=False: runs every time
        else:
            assert again["status"] == "cached", again
    # And back: every step of the optimized run is cached in an unoptimized one.
    code, third = run_json(root, ref, "--no-optimize")
    assert code == 0
    statuses = {(s["id"], tuple(s["iteration"])): s["status"] for s in third["steps"]}
    for key in by_id:
        if not key[0].startswith("publish"):
            assert statuses[key] == "cached", key


FAILING = """
    @step
    def one() -> int:
        return 1

    @step
    def boom(x: int) -> int:
        raise ValueError(f"boom {x}")

    @step
    def never(x: int) -> int:
        return x

    @pipeline
    def failing() -> None:
        never(x=boom(x=one()))
"""


def test_a_failing_member_of_a_fused_chain_is_named_with_its_line(tmp_path: Path) -> None:
    ref = make_project(tmp_path, FAILING)
    source = (tmp_path / ref).read_text(encoding="utf-8").splitlines()
    line = next(i for i, text in enumerate(source, 1) if "never(x=boom(x=one()))" in text)
    code, summary = run_json(tmp_path, ref, "--set", "fuse=true")
    assert code == 1
    (fused,) = summary["steps"]
    assert fused["status"] == "failed"
    log = Path(fused["log"]).read_text(encoding="utf-8")
    assert f"--- pipec: step one (1/3) at {ref}:{line} ---" in log
    assert "--- pipec: step one succeeded in" in log
    assert f"--- pipec: step boom failed (written at {ref}:{line}) ---" in log
    assert "ValueError: boom 1" in log
    assert "step never" not in log


def test_explain_and_ir_optimized_on_the_command_line(project: tuple[Path, str]) -> None:
    root, ref = project
    done = pipec(root, "explain", ref)
    assert done.returncode == 0, done.stderr
    assert "merged 'load_2' into 'load'" in done.stdout
    assert "steps: 20 -> 11" in done.stdout, done.stdout
    fused = pipec(root, "explain", ref, "--target", "local", "--set", "fuse=true")
    assert fused.returncode == 0, fused.stderr
    assert "fuse " in fused.stdout and "into one task" in fused.stdout
    # Deterministic: the same text whatever order sets and dicts iterate in.
    for seed in ("1", "2"):
        again = pipec(
            root,
            "explain",
            ref,
            "--target",
            "local",
            "--set",
            "fuse=true",
            env={"PYTHONHASHSEED": seed},
        )
        assert again.stdout == fused.stdout
    text = pipec(root, "ir", ref, "--optimized")
    assert text.returncode == 0 and "load_2" not in text.stdout
    as_json = pipec(root, "ir", ref, "--optimized", "--target", "local", "--format", "json")
    assert as_json.returncode == 0
    assert "pipec.backends.runtime.chain" not in as_json.stdout  # local does not fuse by default
    assert json.loads(as_json.stdout)["id"] == "optimizable"
    # Without --optimized: the pipeline as the target sees it (its per-target options), unoptimized.
    as_seen = pipec(root, "ir", ref, "--target", "local")
    assert as_seen.returncode == 0 and "load_2" in as_seen.stdout


def test_run_optimizes_by_default(project: tuple[Path, str]) -> None:
    root, ref = project
    compiled = driver.prepare(str(root / ref), "local")
    outcome = compiled.backend.run(compiled.pipeline, {}, RunOptions(view="quiet"))
    result: Any = outcome.result
    assert result.ok
    assert "load_2" not in {s.step_id for s in result.steps}
