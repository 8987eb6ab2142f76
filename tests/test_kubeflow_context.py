"""`pipec.context()` and `log_metric` on kubeflow and vertex: the context travels on the
executor's command line in KFP's own placeholders (`--context`), the step id as a constant task
input so that calls of one function still share their executor, and a step whose function calls
`log_metric` gets a `system.Metrics` output that KFP's UI shows (the others get none).

The same values as on the local target are checked in tests/conformance/test_run.py (kfp.local);
here the spec's shape, the engine's own tool, and a kfp.local run of examples/vocabulary.py whose
Metrics artifact kfp.local reads back."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipec import driver
from pipec.backends.files import write_files
from pipec.backends.kubeflow.components import (
    ITERATION_INPUT,
    METRICS_OUTPUT,
    RUN_ID,
    STEP_INPUT,
)
from pipec.backends.runtime.invocation import RUNTIME_MODULE, parse
from tests.conformance.adapters.kfp import kfp_local_run
from tests.conformance.cases import Project
from tests.conftest import REPO, tool_python

CHECKER = REPO / "tests" / "kfp_check.py"
SETTINGS = {
    "kubeflow": ["image=img:latest"],
    "vertex": ["image=img:latest", "project=p", "region=r", "pipeline_root=gs://b/r"],
}

SOURCE = """
    import pipec

    @step
    def score(x: int) -> int:
        pipec.context().log_metric("score", x)
        return x

    @step
    def plain(x: int) -> int:
        return x + 1

    @step(retries=2)
    def flaky(x: int) -> int:
        return x

    @pipeline
    def scored(xs: list[int] = [1, 2]) -> None:
        plain(1)
        plain.with_options(name="plain_again")(2)
        flaky(3)
        with foreach(xs) as x:
            score(x)
"""


def _spec(tmp_path: Path, target: str) -> tuple[dict[str, Any], list[Path]]:
    ref = Project.create(tmp_path / target).write(SOURCE)
    bundle = driver.prepare(ref, target, SETTINGS[target]).emit()
    files = write_files(bundle, tmp_path / f"out-{target}")
    return next(yaml.safe_load_all(bundle["pipeline.yaml"])), files


def _tasks(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec["components"].values() if "dag" in c)]
    return {key: task for dag in dags for key, task in dag["tasks"].items()}


def _runtime_args(spec: dict[str, Any], task: dict[str, Any]) -> Any:
    component = spec["components"][task["componentRef"]["name"]]
    container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
    line = [*container["command"], *container["args"]]
    return component, parse(line[line.index(RUNTIME_MODULE) + 1 :])


@pytest.mark.parametrize("target", ["kubeflow", "vertex"])
def test_the_context_is_on_the_command_line_in_kfp_placeholders(
    tmp_path: Path, target: str
) -> None:
    spec, _ = _spec(tmp_path, target)
    tasks = _tasks(spec)
    seen = {}
    for key in ("plain", "plain-again", "flaky", "score"):
        component, invocation = _runtime_args(spec, tasks[key])
        seen[key] = invocation.context
        assert component["inputDefinitions"]["parameters"][STEP_INPUT] == {
            "parameterType": "STRING"
        }
    step = f"{{{{$.inputs.parameters['{STEP_INPUT}']}}}}"
    base = {"run_id": RUN_ID, "pipeline": "scored", "step": step}
    assert seen["plain"] == {**base, "iteration": "", "attempt": "1"}
    # KFP may re-run `flaky` with the same command: no attempt number is claimed for it.
    assert seen["flaky"] == {**base, "iteration": ""}
    # Inside a foreach the iteration is the loop's index, a task input selected from the entry
    # the loop iterates over (KFP renders no index of its own).
    index = f"{{{{$.inputs.parameters['{ITERATION_INPUT.format(0)}']}}}}"
    assert seen["score"] == {**base, "iteration": index, "attempt": "1"}
    assert tasks["score"]["inputs"]["parameters"][ITERATION_INPUT.format(0)] == {
        "componentInputParameter": "pipelinechannel--loop-1-loop-entry",
        "parameterExpressionSelector": 'parseJson(string_value)["index"]',
    }
    # Two calls of one function share their component (and executor); each task says its id.
    assert tasks["plain"]["componentRef"] == tasks["plain-again"]["componentRef"]
    constants = {
        key: tasks[key]["inputs"]["parameters"][STEP_INPUT]["runtimeValue"]["constant"]
        for key in ("plain", "plain-again", "flaky", "score")
    }
    assert constants == {
        "plain": "plain",
        "plain-again": "plain_again",
        "flaky": "flaky",
        "score": "score",
    }


@pytest.mark.parametrize("target", ["kubeflow", "vertex"])
def test_only_a_step_that_logs_metrics_gets_a_metrics_output(tmp_path: Path, target: str) -> None:
    spec, files = _spec(tmp_path, target)
    tasks = _tasks(spec)
    with_metrics = {}
    for key in ("plain", "flaky", "score"):
        component, invocation = _runtime_args(spec, tasks[key])
        outputs = component.get("outputDefinitions", {}).get("artifacts", {})
        with_metrics[key] = METRICS_OUTPUT in outputs
        assert (invocation.kfp_metrics is not None) == with_metrics[key]
        if with_metrics[key]:
            assert outputs[METRICS_OUTPUT]["artifactType"]["schemaTitle"] == "system.Metrics"
            assert invocation.kfp_executor_input == "{{$}}"
    assert with_metrics == {"plain": False, "flaky": False, "score": True}
    # KFP's own loader and the strict proto parse read the spec (and Vertex's API type the job).
    checks = [["spec", *(str(f) for f in files if f.name == "pipeline.yaml")]]
    checks += [["vertex-job", str(f)] for f in files if f.name == "pipeline_job.json"]
    for check in checks:
        done = subprocess.run(
            [str(tool_python("kfp")), str(CHECKER), *check],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.docker
@pytest.mark.slow
def test_kfp_local_reads_the_logged_metric_from_the_metrics_artifact(tmp_path: Path) -> None:
    examples = Project.of_examples(tmp_path / "project", "kfp_context_examples")
    workdir = tmp_path / "run"
    workdir.mkdir()
    done = kfp_local_run(examples.example("vocabulary"), {}, workdir, os.environ)
    # `size` calls log_metric: kfp.local lists its Metrics artifact with the metric as metadata.
    assert done.recorded["size"] == {"output": 8, METRICS_OUTPUT: {"metrics": {"words": 8}}}
    # `build` and `export` never log a metric and have no Metrics output.
    assert METRICS_OUTPUT not in done.recorded.get("export", {})
    assert not list(done.folder.rglob(f"build/{METRICS_OUTPUT}"))
