"""Runs: every target that runs here gives the local target's outputs, byte for byte (content
hashes), optimized (the default) and with `--no-optimize`, with hostile values arriving verbatim,
and its steps inherit the environment its adapter says they do.

`--no-optimize` runs: the examples the optimizer changes on a target (`OPTIMIZED_EXAMPLES`, one
parameter set each; test_optimize.py proves every other pair compiles to the same IR and files
either way), and on every adapter a pipeline each target-neutral rule rewrites (`OPTIMIZABLE`),
run both ways. Every run is held to the local target's optimized run, keyed by the steps as
written (a step merged away by cse has its keeper's outputs).

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
from tests.conformance.adapters import ADAPTERS, reference
from tests.conformance.cases import (
    CONTEXT_LOOP_SOURCE,
    CONTEXT_NESTED_SOURCE,
    CONTEXT_SOURCE,
    EXAMPLE_RUNS,
    HOSTILE_PARAMS,
    HOSTILE_SOURCE,
    OPTIMIZED_EXAMPLES,
    PROBE,
    PROBE_KEYS,
    PROBE_SOURCE,
    SECRETS,
    SHAPES_RUNS,
    SHAPES_SOURCE,
    UNSET,
    Project,
    hostile_values,
)
from tests.conformance.harness import Harness, NoEngineHere, Outputs, RunFailed
from tests.conformance.outputs import value_hash
from tests.passes.equivalence import OPTIMIZABLE, as_written

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
            reason="kfp.local 2.17 hands the collected list[int] on as floats, so `total` "
            "returns a float where int is declared and the runtime's return check fails it",
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
    ],
    "etl": [
        pytest.mark.notyet(
            ["kubeflow"],
            reason="its steps read a secret (WAREHOUSE_TOKEN), which kfp.local cannot hand over",
            raises=NoEngineHere,
        ),
        pytest.mark.never(
            ["local_docker"],
            reason="its featurize step needs a GPU and its own image (ghcr.io/acme/etl-gpu), and "
            "this machine's Docker engine has no GPU runtime and pulls nothing",
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


@pytest.mark.notyet(
    ["kubeflow"],
    reason="kfp.local 2.17 hands a list[int] output on as floats ([1.0, 2.0]), so the inner "
    "loop's steps fail their declared types; and it replaces loop tasks' inputs from task outputs "
    "with the loop item",
    raises=RunFailed,
)
@pytest.mark.parametrize("params", list(SHAPES_RUNS.values()), ids=list(SHAPES_RUNS))
def test_nested_loops_and_conditions_over_several_outputs_equal_the_local_run(
    engine: Harness, project: Project, tmp_path: Path, params: dict[str, Any]
) -> None:
    ref = project.write(SHAPES_SOURCE, "shapes")
    base = _base()
    got = engine.run(ref, params, tmp_path / "engine", base, {})
    want = reference().run(ref, params, tmp_path / "local", engine.step_env(base), {})
    assert any(key.count("/") >= 3 for key in want), "no output of a nested foreach"
    assert got == want


def _unoptimized_params() -> list[Any]:
    """(adapter, example, params) for each example the optimizer changes on the adapter's target:
    its first parameter set (parameters are never folded, so they change nothing here)."""
    first: dict[str, tuple[str, dict[str, Any]]] = {}
    for case, (stem, params) in EXAMPLE_RUNS.items():
        first.setdefault(stem, (case, params))
    return [
        pytest.param(
            adapter, stem, params, marks=EXAMPLE_GAPS.get(stem, []), id=f"{adapter.id}-{case}"
        )
        for adapter in ADAPTERS
        for stem, (case, params) in first.items()
        if stem in OPTIMIZED_EXAMPLES.get(adapter.target, frozenset())
    ]


def _reference_as_written(
    ref: str, params: dict[str, Any], workdir: Path, env: dict[str, str], secrets: dict[str, str]
) -> Outputs:
    """The local target's (optimized) run, with the outputs of every step cse merged away under
    its own id as well (they are its keeper's): what a run of the pipeline as written stores."""
    local = reference()
    outputs = local.run(ref, params, workdir, env, secrets)
    assert outputs, "the local run wrote no outputs"
    compiled = driver.prepare(ref, local.target, local.settings)
    return as_written(outputs, compiled.pipeline, compiled.rewrites)


@pytest.mark.parametrize(("adapter", "stem", "params"), _unoptimized_params())
def test_an_unoptimized_run_equals_the_local_run(
    adapter: Harness, examples: Project, tmp_path: Path, stem: str, params: dict[str, Any]
) -> None:
    ref = examples.example(stem)
    base = _base()
    got = adapter.run(ref, params, tmp_path / "engine", base, SECRETS, optimize=False)
    want = _reference_as_written(ref, params, tmp_path / "local", adapter.step_env(base), SECRETS)
    assert got == want


# kfp.local 2.17 hands `load`'s list[int] on as floats ([0.0, 1.0, ...]: its parameters pass
# through protobuf Struct numbers), so `scale` returns floats where list[int] is declared and the
# runtime's return check fails the task; were that fixed, kfp_local_outputs still could not
# tell apart the steps calling `label` (kfp.local keeps outputs by component name).
KFP_LOCAL_GAPS = pytest.mark.notyet(
    ["kubeflow"],
    reason="kfp.local 2.17 passes a list[int] output to the next task as floats (the step's "
    "declared return type then fails it), and keeps a task's outputs under its component's "
    "name, so steps calling one component cannot be told apart",
    raises=RunFailed,
)


@KFP_LOCAL_GAPS
def test_an_optimized_run_keeps_the_outputs(
    engine: Harness, project: Project, tmp_path: Path
) -> None:
    """The rules (and fusion where the target fuses) on the engine give the local run's outputs."""
    ref = project.write(OPTIMIZABLE)
    base = _base()
    got = engine.run(ref, {}, tmp_path / "engine", base, {})
    compiled = driver.prepare(ref, engine.target, engine.settings)
    want = _reference_as_written(ref, {}, tmp_path / "local", engine.step_env(base), {})
    assert as_written(got, compiled.pipeline, compiled.rewrites) == want


@KFP_LOCAL_GAPS
def test_an_unoptimized_run_keeps_the_outputs(
    adapter: Harness, project: Project, tmp_path: Path
) -> None:
    """The pipeline as written (`--no-optimize`: the dead branch and the empty loop skipped at
    run time, the repeated calls run twice) gives the optimized local run's outputs."""
    ref = project.write(OPTIMIZABLE)
    base = _base()
    got = adapter.run(ref, {}, tmp_path / "engine", base, {}, optimize=False)
    want = _reference_as_written(ref, {}, tmp_path / "local", adapter.step_env(base), {})
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


def test_the_step_context_is_the_local_one(
    adapter: Harness, project: Project, tmp_path: Path
) -> None:
    """`pipec.context()` gives the same pipeline, step id, iteration and attempt as on the local
    target (a run id is there on both)."""
    ref = project.write(CONTEXT_SOURCE)
    got = adapter.run(ref, {}, tmp_path / "run", _base(), {})
    want = reference().run(ref, {}, tmp_path / "local", adapter.step_env(_base()), {})
    assert set(want) == {"where_am_i/output", "no_metrics_here/output"}
    assert got == want


def test_the_iteration_in_a_foreach_is_the_local_one(
    adapter: Harness, project: Project, tmp_path: Path
) -> None:
    ref = project.write(CONTEXT_LOOP_SOURCE)
    got = adapter.run(ref, {}, tmp_path / "run", _base(), {})
    want = reference().run(ref, {}, tmp_path / "local", adapter.step_env(_base()), {})
    assert set(want) == {"each_one/0/output", "each_one/1/output"}
    assert got == want


def test_the_iteration_in_nested_foreach_is_the_local_one(
    adapter: Harness, project: Project, tmp_path: Path
) -> None:
    """(outer, inner), for inner loops over the outer item and over a parameter."""
    ref = project.write(CONTEXT_NESTED_SOURCE)
    got = adapter.run(ref, {}, tmp_path / "run", _base(), {})
    want = reference().run(ref, {}, tmp_path / "local", adapter.step_env(_base()), {})
    rows = {"in_row": [(0, 0), (0, 1), (1, 0)], "in_fixed": [(0, 0), (0, 1), (1, 0), (1, 1)]}
    assert set(want) == {f"{s}/{i}/{j}/output" for s, cells in rows.items() for i, j in cells}
    assert got == want
