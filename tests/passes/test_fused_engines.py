"""Fused chains run on the engines that run here, and store what the local target stores unfused:
Airflow (`dag.test()`, local mode) and KFP (`kfp.local` with DockerRunner). Each fused member's
outputs are stored on their own under the fused task (`<fused>/<member>__<output>`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pipec import driver
from pipec.backends.airflow.paths import run_folder
from pipec.backends.files import write_files
from tests.airflow_helpers import (
    airflow_env,
    check,
    compile_to,
    local_settings,
    migrate,
    stored_outputs,
)
from tests.conformance.images import base_image
from tests.conftest import REPO, tool_python
from tests.passes.equivalence import as_written, fused_ports

pytestmark = pytest.mark.slow

SWEEP = REPO / "examples" / "sweep.py"


def _local(tmp_path: Path, ref: Path, params: dict[str, object]) -> dict[str, str]:
    """Outputs of an unoptimized local run (the reference)."""
    artifacts = tmp_path / "local"
    command = [str(REPO / ".venv" / "bin" / "pipec"), "run", str(ref), "--no-optimize"]
    command += ["--no-cache", "--json", "--view", "quiet", "--set", f"artifact_root={artifacts}"]
    for name, value in params.items():
        command += ["--param", f"{name}={json.dumps(value)}"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return stored_outputs(artifacts / json.loads(done.stdout)["run_id"])


def test_airflow_runs_fused_chains_like_the_local_target(tmp_path: Path) -> None:
    dags, artifacts = tmp_path / "dags", tmp_path / "artifacts"
    dags.mkdir()
    env = airflow_env(tmp_path / "home", dags)
    migrate(env)
    settings = [*local_settings(artifacts), "fuse=true"]
    dag_file = compile_to(str(SWEEP), dags, settings)
    params = {"xs": [1.0, 2.0, 3.0, 4.0]}
    result = check(["run", str(dag_file), dag_file.stem, json.dumps(params)], env)
    assert result["state"] == "success", result
    compiled = driver.prepare(str(SWEEP), "airflow", settings)
    assert fused_ports(compiled.pipeline), "nothing was fused"
    run_dir = artifacts / dag_file.stem / run_folder(result["run_id"])
    fused = as_written(stored_outputs(run_dir), compiled.pipeline, compiled.rewrites)
    assert fused == _local(tmp_path, SWEEP, params)


@pytest.mark.docker
def test_kfp_local_runs_fused_chains_like_the_local_target(tmp_path: Path) -> None:
    python = tool_python("kfp")
    image = base_image()  # pipec-kfp-test built from this tree (Docker started when needed)
    settings = [f"image={image}", "code_root=/app", "fuse=true"]
    ref = SWEEP.relative_to(REPO).as_posix()
    compiled = driver.prepare(ref, "kubeflow", settings)
    ports = fused_ports(compiled.pipeline)
    assert ports, "nothing was fused"
    write_files(compiled.emit(), tmp_path)
    root = tmp_path / "kfp-root"
    root.mkdir()
    command = [str(python), str(REPO / "tests" / "kfp_check.py"), "run"]
    command += [str(tmp_path / "pipeline.yaml"), "{}", str(root), image]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    kfp = json.loads(done.stdout.strip().splitlines()[-1])
    # The loop's fused task hands the square of every item out of the loop, as unfused.
    squares = kfp["loop-1"]["pipelinechannel--scale-to-square--square__output"]
    assert squares == [(x * 2.0) ** 2 for x in (1.0, 2.0, 3.0)]
    assert kfp["total"] == {"output": 56.0}
    assert kfp["high"] == {"output": {"high": 56.0}}
