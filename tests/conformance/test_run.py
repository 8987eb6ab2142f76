"""Runs: every target that runs here gives the local target's outputs, byte for byte (content
hashes), with hostile values arriving verbatim, and its steps inherit the environment its adapter
says they do.

The local reference run gets exactly the environment the engine's steps get (`step_env`): a
variable such as OPENBLAS_CORETYPE on one side only changes the floats of a fitted model, and a
comparison of two runs made in different environments proves nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pipec import driver
from pipec.ir import graph
from pipec.ir.diagnostics import DiagnosticError
from tests.conformance.adapters import reference
from tests.conformance.cases import (
    EXAMPLE_RUNS,
    HOSTILE_PARAMS,
    HOSTILE_SOURCE,
    PROBE,
    PROBE_KEYS,
    PROBE_SOURCE,
    SECRETS,
    UNSET,
    Project,
    hostile_values,
)
from tests.conformance.harness import Harness, NoEngineHere, Outputs, RunFailed
from tests.conformance.outputs import value_hash

NO_ENGINE = [
    pytest.mark.never(
        ["vertex"], reason="Vertex AI runs only in Google Cloud", raises=NoEngineHere
    ),
    pytest.mark.notyet(
        ["airflow-kubernetes"],
        reason=(
            "no Kubernetes cluster here; Airflow's KubernetesPodOperator against the "
            "kubernetes target's stand-in API server is not wired in yet"
        ),
        raises=NoEngineHere,
    ),
    pytest.mark.notyet(
        ["airflow-docker"],
        reason="DockerOperator runs need an image with the project; not wired in yet",
        raises=NoEngineHere,
    ),
]
pytestmark = [pytest.mark.slow, *NO_ENGINE]

# kfp.local (2.17) replaces every input of a loop task that comes from a task output with the
# loop item, and loses pipeline-channel inputs of loops inside sub-DAGs.
KFP_LOOP_INPUTS = "kfp.local 2.17 hands loop tasks the loop item for inputs from task outputs"
EXAMPLE_GAPS: dict[str, list[pytest.MarkDecorator]] = {
    "training": [
        pytest.mark.notyet(
            ["kubeflow"],
            reason="its deploy step reads a Kubernetes secret, which kfp.local cannot hand over "
            f"(its train step's own image cannot be pulled here, and {KFP_LOOP_INPUTS})",
            raises=NoEngineHere,
        ),
        pytest.mark.never(
            ["local_docker"],
            reason="its train step asks for a GPU model (gpu_type), which Docker cannot choose: "
            "U001 before anything runs (tests/test_local_docker_run.py runs it without one)",
            raises=RunFailed,
        ),
    ],
    "nested": [
        pytest.mark.notyet(
            ["kubeflow"],
            reason="kfp.local 2.17: 'Parent pipeline input argument "
            "pipelinechannel--make-shards--output not found' for a loop inside a sub-DAG",
            raises=RunFailed,
        )
    ],
    "iris": [
        pytest.mark.notyet(
            ["kubeflow"],
            reason=f"{KFP_LOOP_INPUTS}; and the kfp test image has no scikit-learn",
            raises=RunFailed,
        )
    ],
    # The realistic examples (issue 14): each mark names what the target still lacks.
    "quickstart": [
        pytest.mark.notyet(
            ["kubeflow"],
            reason="the kfp test image has no pandas or scikit-learn",
            raises=RunFailed,
        )
    ],
    "tuning": [
        pytest.mark.notyet(
            ["kubeflow"],
            reason=f"{KFP_LOOP_INPUTS}; and the kfp test image has no pandas or scikit-learn",
            raises=RunFailed,
        ),
        pytest.mark.notimpl(
            ["airflow-local"],
            reason="a foreach inside a foreach is U001 on airflow (mapped task groups do not "
            "nest); pipec does not lower it yet (branch afshapes)",
            raises=DiagnosticError,
        ),
        pytest.mark.notimpl(
            ["github"],
            reason="a foreach inside a foreach is U001 on github (matrices do not nest); pipec "
            "does not flatten it into one matrix yet",
            raises=RunFailed,
        ),
    ],
    "etl": [
        pytest.mark.notyet(
            ["kubeflow"],
            reason="its steps read a secret (WAREHOUSE_TOKEN), which kfp.local cannot hand over",
            raises=NoEngineHere,
        ),
        pytest.mark.notimpl(
            ["local_docker"],
            reason="disk requests are U001 on local_docker (pipec gives a container no scratch "
            "volume of a size yet)",
            raises=RunFailed,
        ),
    ],
}


def _example_params() -> list[Any]:
    return [
        pytest.param(stem, params, marks=EXAMPLE_GAPS.get(stem, []), id=case)
        for case, (stem, params) in EXAMPLE_RUNS.items()
    ]


def _base() -> dict[str, str]:
    """The environment both sides of a comparison start from: this process's own."""
    return dict(os.environ)


@pytest.mark.parametrize(("stem", "params"), _example_params())
def test_a_run_equals_the_local_run(
    engine: Harness, examples: Project, tmp_path: Path, stem: str, params: dict[str, Any]
) -> None:
    ref = examples.example(stem)
    base = _base()
    got = engine.run(ref, params, tmp_path / "engine", base, SECRETS)
    want = reference().run(ref, params, tmp_path / "local", engine.step_env(base), SECRETS)
    assert want, "the local run wrote no outputs"
    assert got == want


def _hostile_expected(ref: str) -> Outputs:
    """The outputs a run of the hostile pipeline must write, from the values it must return."""
    pipeline, _ = driver.load_checked(ref)
    components = graph.components(pipeline)
    values = hostile_values(HOSTILE_PARAMS)
    expected: Outputs = {}
    for step in graph.steps(pipeline):
        function = components[step.component].function
        if function == "item":
            for i, value in enumerate(values["item"]):
                expected[f"{step.id}/{i}/output"] = value_hash(value)
        else:
            expected[f"{step.id}/output"] = value_hash(values[function])
    return expected


@pytest.mark.notyet(
    ["kubeflow"],
    reason="kfp.local reads a step's output parameter file in text mode "
    "(kfp/local/executor_output_utils.py), so a '\\r\\n' in a collected value reaches the "
    "next task as '\\n'; the step's own output is intact",
    raises=AssertionError,
)
def test_hostile_values_arrive_verbatim(adapter: Harness, project: Project, tmp_path: Path) -> None:
    ref = project.write(HOSTILE_SOURCE)
    got = adapter.run(ref, HOSTILE_PARAMS, tmp_path / "run", _base(), {})
    assert got == _hostile_expected(ref)
    assert not Path("/tmp/pwned").exists()


def test_steps_inherit_the_environment_the_adapter_states(
    adapter: Harness, project: Project, tmp_path: Path
) -> None:
    """The claim every comparison rests on: a step sees `step_env(base)` (for the variables
    that matter), when the engine was started with `base`."""
    ref = project.write(PROBE_SOURCE)
    base = {**_base(), PROBE: "from the engine's environment"}
    got = adapter.run(ref, {}, tmp_path / "run", base, {})
    inherited = adapter.step_env(base)
    (step,) = graph.steps(driver.load_checked(ref)[0])
    assert got == {
        f"{step.id}/output": value_hash({k: inherited.get(k, UNSET) for k in PROBE_KEYS})
    }
