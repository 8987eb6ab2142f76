"""Really run a compiled pipeline: kfp.local with DockerRunner (network none) on the image that
`.ci/docker` builds, and compare every output with the local target's run of the same pipeline.

Skips when Docker cannot be had outside CI; in CI (env CI set) that is a failure."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipec import driver
from pipec.backends.files import write_files
from tests.conftest import REPO, tool_python

IMAGE = "pipec-kfp-test:latest"
# kfp.local 2.17 replaces *every* input of a loop task that comes from a task output with the
# loop item, so a loop body that reads an upstream step's output (as iris, training and nested do)
# cannot run under kfp.local although the spec is what KFP itself emits; it also only sees output
# artifacts listed in KFP's executor-output file. examples/sweep.py avoids both.
EXAMPLE = REPO / "examples" / "sweep.py"

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _docker_images() -> None:
    """Start Docker and build the images (idempotent), or skip/fail with the reason."""
    if shutil.which("docker") is None and shutil.which("apt-get") is None:
        reason = "Docker is not installed and cannot be installed here"
    else:
        done = subprocess.run(
            ["bash", str(REPO / ".ci" / "docker")], capture_output=True, text=True, check=False
        )
        if done.returncode == 0:
            return
        reason = f".ci/docker failed: {done.stderr.strip()[-2000:]}"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _local_outputs(tmp_path: Path) -> dict[str, Any]:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(EXAMPLE, project / "sweep.py")
    done = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "pipec"),
            "run",
            "sweep.py",
            "--target",
            "local",
            "--json",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    outputs: dict[str, Any] = {}
    for step in report["steps"]:
        if step["status"] == "succeeded":
            key = step["id"] + "".join(f"[{i}]" for i in step["iteration"])
            outputs[key] = step["outputs"]
    return outputs


def test_kfp_local_docker_run_matches_the_local_target(tmp_path: Path) -> None:
    python = tool_python("kfp")
    _docker_images()
    bundle = driver.compile_ref(
        EXAMPLE.relative_to(REPO).as_posix(), "kubeflow", [f"image={IMAGE}", "code_root=/app"]
    )
    spec = tmp_path / "pipeline.yaml"
    write_files(bundle, tmp_path)
    root = tmp_path / "kfp-root"
    root.mkdir()
    done = subprocess.run(
        [
            str(python),
            str(REPO / "tests" / "kfp_check.py"),
            "run",
            str(spec),
            "{}",
            str(root),
            IMAGE,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    kfp = json.loads(done.stdout.strip().splitlines()[-1])
    local = _local_outputs(tmp_path)

    assert kfp["loop-1"]["pipelinechannel--square--output"] == [
        local[f"square[{i}]"]["output"] for i in range(3)
    ]
    assert kfp["total"] == local["total"] == {"output": 56.0}
    assert kfp["is-big"] == local["is_big"] == {"output": True}
    assert kfp["high"] == local["high"] == {"output": {"high": 56.0}}
    assert "low" not in kfp and "low" not in local
