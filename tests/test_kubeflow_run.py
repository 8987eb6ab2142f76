"""KFP's own plumbing, run for real under kfp.local (DockerRunner, network none): the loop's DAG
surfaces every iteration's output as one list, the branch runs its side only, and values keep
their KFP types.

That every output equals the local target's run (with the same environment on both sides) is in
tests/conformance/test_run.py; which examples kfp.local cannot run, and why, is recorded there.
Skips when Docker cannot be had outside CI; in CI (env CI set) that is a failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conformance.adapters.kfp import kfp_local_run
from tests.conformance.cases import Project

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_loops_collect_and_branches_are_plumbed_through_dags(tmp_path: Path) -> None:
    examples = Project.of_examples(tmp_path / "project", "kfp_plumbing_examples")
    workdir = tmp_path / "run"
    workdir.mkdir()
    # examples/sweep.py with its defaults: xs=[1, 2, 3] scaled by 2 and squared, threshold 20.
    recorded = kfp_local_run(examples.example("sweep"), {}, workdir, os.environ).recorded
    assert recorded["loop-1"]["pipelinechannel--square--output"] == [4.0, 16.0, 36.0]
    assert recorded["total"] == {"output": 56.0}
    assert recorded["is-big"] == {"output": True}
    assert recorded["high"] == {"output": {"high": 56.0}}
    assert "low" not in recorded
