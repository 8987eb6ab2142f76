"""Kubernetes expands `$(NAME)` and `$$` in container environment values. Values pipec hands to
steps through the environment on Kubernetes-backed targets (kubeflow, vertex, airflow with the
KubernetesPodOperator) must reach the step exactly as written, so they are escaped."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import yaml

from pipec import driver
from tests.helpers import write_pipeline

SOURCE = """
@step
def show(text: str) -> str:
    return text

@pipeline
def dollars(p: str = "$(A) and $$"):
    show.with_options(env={"A": "x", "B": "$(A)", "C": "$$ and $"})(text="$(HOME) $$")
    show.with_options(name="from_param")(text=p)
"""
ORIGINAL_ENV = {"A": "x", "B": "$(A)", "C": "$$ and $"}


def kubernetes_expand(value: str, defined: dict[str, str]) -> str:
    """What the kubelet does to an env value: `$$` -> `$`, `$(NAME)` -> an earlier variable."""

    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "$$":
            return "$"
        return defined.get(match.group(1), token)

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", one, value)


def _expanded(env: list[tuple[str, str]]) -> dict[str, str]:
    seen: dict[str, str] = {}
    for name, value in env:
        seen[name] = kubernetes_expand(value, seen)
    return seen


def test_kubeflow_env_survives_expansion(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path, SOURCE)
    bundle = driver.compile_ref(str(path), "kubeflow", ["image=img"])
    spec = next(yaml.safe_load_all(bundle["pipeline.yaml"]))
    executor = spec["deploymentSpec"]["executors"]["exec-show"]["container"]
    env = [(e["name"], e["value"]) for e in executor["env"]]
    assert _expanded(env) == ORIGINAL_ENV


def _env_vars(dag: str, keyword: str) -> list[dict[str, str]]:
    """Every literal `keyword={...}` dict in a DAG file (one per task)."""
    found = []
    for node in ast.walk(ast.parse(dag)):
        if isinstance(node, ast.keyword) and node.arg == keyword:
            found.append(ast.literal_eval(node.value))
    return found


def test_airflow_kubernetes_env_and_json_values_survive_expansion(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path, SOURCE)
    settings = ["image=img", "operator=kubernetes", "artifact_root=/data"]
    dag = next(iter(driver.compile_ref(str(path), "airflow", settings).values()))
    first, second = _env_vars(dag, "env_vars")
    expanded = _expanded(list(first.items()))
    assert {k: expanded[k] for k in ORIGINAL_ENV} == ORIGINAL_ENV
    # The constant argument travels as JSON text with no `$` left for Kubernetes to expand.
    assert "$" not in first["PIPEC_INPUT_text"]
    assert json.loads(expanded["PIPEC_INPUT_text"]) == "$(HOME) $$"
    # The parameter is rendered by Jinja with `$` replaced by its JSON escape.
    assert second["PIPEC_INPUT_text"].endswith('| tojson | replace("$", "\\\\u0024") }}')


def test_airflow_docker_and_local_env_are_not_escaped(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path, SOURCE)
    for operator in ("docker", "local"):
        settings = ["image=img", f"operator={operator}", "artifact_root=/data"]
        dag = next(iter(driver.compile_ref(str(path), "airflow", settings).values()))
        assert "$$ and $" in dag and "$$$$" not in dag, operator
