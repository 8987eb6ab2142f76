"""What is checked before the first step runs: one clear error, exit 2, nothing started."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.local_helpers import make_project, pipec

ONE_STEP = """
@step
def one() -> int:
    return 1

@pipeline
def single() -> None:
    one()
"""


def _refused(root: Path, *args: str) -> str:
    """Run `pipec run ARGS`: it must exit 2 with one line and start nothing; return the line."""
    done = pipec(root, "run", *args, "--view", "plain")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert not (root / ".pipec" / "logs").exists(), "a step was started"
    return lines[0]


def test_an_artifact_root_that_cannot_be_written(tmp_path: Path) -> None:
    ref = make_project(tmp_path, ONE_STEP)
    (tmp_path / "a-file").write_text("not a folder")
    line = _refused(tmp_path, ref, "--set", "artifact_root=a-file/artifacts")
    assert "artifact_root" in line and str(tmp_path / "a-file" / "artifacts") in line


def test_an_artifact_root_whose_filesystem_is_not_installed(tmp_path: Path) -> None:
    if importlib.util.find_spec("s3fs") is not None:
        pytest.skip("s3fs is installed here")
    ref = make_project(tmp_path, ONE_STEP)
    line = _refused(tmp_path, ref, "--set", "artifact_root=s3://bucket/runs")
    assert "s3://bucket/runs" in line and "s3fs" in line
    line = _refused(tmp_path, ref, "--set", "artifact_root=nosuchfs://bucket/runs")
    assert "nosuchfs" in line


@pytest.mark.parametrize("image", ["", "   "])
def test_a_blank_image_setting(tmp_path: Path, image: str) -> None:
    ref = make_project(tmp_path, ONE_STEP)
    line = _refused(tmp_path, ref, "--set", f"image={image}")
    assert "image" in line


def test_a_component_module_that_is_not_a_module_path(tmp_path: Path) -> None:
    ref = make_project(tmp_path, ONE_STEP)
    done = pipec(tmp_path, "ir", ref, "--format", "json")
    assert done.returncode == 0, done.stderr
    ir = json.loads(done.stdout)
    for bad in ("pkg/mod", "mod.py", "1mod", "", "mod..x"):
        ir["components"][0]["module"] = bad
        (tmp_path / "bad.json").write_text(json.dumps(ir))
        done = pipec(tmp_path, "run", "bad.json", "--view", "plain")
        assert done.returncode == 2, (bad, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        assert f"module {bad!r}" in done.stderr, done.stderr
        assert not (tmp_path / ".pipec" / "logs").exists(), "a step was started"
