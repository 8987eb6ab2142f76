"""A step's environment survives the engine: what the pipeline sets reaches the step's process
exactly as written, after Airflow's Jinja and the kubelet's `$(NAME)` / `$$` expansion; values a
target hands over in the environment (`--input NAME=env:VAR`) decode to the bound value.

Replaces the per-target tests/test_k8s_env.py: every adapter's `steps()` says how its engine
starts a step, so the same test covers kubeflow, vertex, airflow's three modes and local."""

from __future__ import annotations

import json

from pipec import driver
from pipec.backends.runtime.invocation import InvocationError, SourceKind, parse, split_source
from pipec.ir import graph
from tests.conformance.cases import ENV_INPUTS, ENV_SOURCE, STEP_ENV, Project
from tests.conformance.harness import Harness


def test_step_env_reaches_the_process_as_written(adapter: Harness, project: Project) -> None:
    ref = project.write(ENV_SOURCE)
    pipeline, _ = driver.load_checked(ref)
    views = adapter.steps(adapter.compile(ref))
    assert set(views) == {s.id for s in graph.steps(pipeline)}
    env = views["show"].env
    assert {name: env.get(name) for name in STEP_ENV} == STEP_ENV
    assert not set(STEP_ENV) & set(views["from_param"].env)
    for step, view in views.items():
        for name, text in parse(view.argv).inputs.items():
            try:
                kind, variable = split_source(text)
            except InvocationError:
                continue  # an engine placeholder that becomes a source only at run time
            if kind is SourceKind.ENV and variable not in view.runtime:
                assert json.loads(view.env[variable]) == ENV_INPUTS[step, name], (step, name)
