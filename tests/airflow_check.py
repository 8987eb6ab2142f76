"""Checks run inside the Airflow tool environment (.venvs/airflow) for tests/test_airflow*.py.

The test process has pipec but no Airflow; this script has Airflow but imports nothing from pipec.
It prints its answer as one line, `pipec-airflow-check: ` + JSON, on stdout (Airflow's own logs
may share stdout):

    python airflow_check.py import DAGS_FOLDER
        DagBag import: {"errors": {file: message}, "dags": {dag_id: {task_id: {...}}}}
    python airflow_check.py run DAG_FILE DAG_ID CONF_JSON
        `dag.test()` against SQLite: {"state": ..., "tasks": {task_id: [state per map index]}}
    python airflow_check.py run-as DAG_FILE DAG_ID CONF_JSON RUN_ID LOGICAL_DATE
        `run`, with the run id and logical date given (as a scheduler or a trigger through the
        API with a chosen `dag_run_id` would set them; the id is not checked against Airflow's
        run-id pattern, which operators can widen)
    python airflow_check.py env DAGS_FOLDER
        DagBag import, then the environment each step task hands its step, rendered by Airflow
        (Jinja) for a run with the DAG's default params: {"errors": {...}, "env": {dag_id:
        {task_id: {name: value}}}}
    python airflow_check.py pods DAGS_FOLDER DAG_ID
        the pod each KubernetesPodOperator task would create (its own builder, dry run), as
        Kubernetes API dicts: {task_id: {"resources", "nodeSelector", "tolerations",
        "secretEnv", "activeDeadlineSeconds"}}
    python airflow_check.py render DAGS_FOLDER...
        DagBag import of each folder (one DagBag each, so DAG ids may repeat across folders),
        then every task that runs the pipec step runtime with its templates rendered by Airflow
        for a run with the DAG's default params (map index 0; any XCom is two stand-in items; an
        Airflow Variable is a stand-in text naming it):
        {folder: {"errors": {...}, "dags": {dag_id: {"params": {...}, "steps": {task_id:
        {"argv": [...], "env": [[name, value], ...]}}}}}} (`argv` after `-m
        pipec.backends.runtime`; `env` in the operator's order, before a container runtime
        expands it)

AIRFLOW_HOME must point at a scratch folder (the caller makes one per test).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any

MARKER = "pipec-airflow-check: "


def _task_info(task: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "operator": type(task).__name__,
        "upstream": sorted(task.upstream_task_ids),
        "trigger_rule": getattr(task.trigger_rule, "value", str(task.trigger_rule)),
        "group": task.task_group.group_id if task.task_group else None,
        "display_name": task.task_display_name,
    }
    for field in ("retries", "max_active_tis_per_dagrun"):
        info[field] = getattr(task, field, None)
    timeout = getattr(task, "execution_timeout", None)
    info["execution_timeout"] = timeout.total_seconds() if timeout else None
    delay = getattr(task, "retry_delay", None)
    info["retry_delay"] = delay.total_seconds() if delay is not None else None
    return info


def import_dags(folder: str) -> dict[str, Any]:
    """Load every DAG file in `folder` the way the DAG processor does."""
    from airflow.dag_processing.dagbag import DagBag

    with contextlib.redirect_stdout(sys.stderr):
        bag = DagBag(dag_folder=folder)
    dags = {}
    for dag_id, dag in bag.dags.items():
        dags[dag_id] = {
            "tasks": {t.task_id: _task_info(t) for t in dag.tasks},
            "params": {
                k: dag.params.get_param(k).resolve(suppress_exception=True) for k in dag.params
            },
            "schedule": dag.schedule if isinstance(dag.schedule, str) else None,
            "catchup": dag.catchup,
            "start_date": dag.start_date.isoformat() if dag.start_date else None,
        }
    return {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": dags}


def run_dag(path: str, dag_id: str, conf: dict[str, Any], date: Any = None) -> dict[str, Any]:
    """Run one DAG from `path` with `dag.test()` (tasks run in this process, one at a time), at
    logical date `date` (default: now)."""
    from airflow.dag_processing.dagbag import DagBag

    with contextlib.redirect_stdout(sys.stderr):
        bag = DagBag(dag_folder=path)
    if bag.import_errors:
        return {"errors": {k: str(v) for k, v in bag.import_errors.items()}}
    dag = bag.dags[dag_id]
    # dag.test() logs a lot on stdout; keep stdout for the JSON answer.
    with contextlib.redirect_stdout(sys.stderr):
        dated = {} if date is None else {"logical_date": date}
        run = dag.test(run_conf=conf, **dated)
    tasks: dict[str, list[str]] = {}
    for ti in sorted(run.get_task_instances(), key=lambda t: (t.task_id, t.map_index)):
        tasks.setdefault(ti.task_id, []).append(str(ti.state))
    return {"state": str(run.state), "run_id": run.run_id, "tasks": tasks}


def run_as(path: str, dag_id: str, conf: dict[str, Any], run_id: str, date: str) -> dict[str, Any]:
    """`run_dag` with a chosen run id and logical date."""
    from datetime import datetime
    from unittest import mock

    from airflow.models.dagrun import DagRun

    with mock.patch.object(DagRun, "generate_run_id", return_value=run_id):
        return run_dag(path, dag_id, conf, datetime.fromisoformat(date))


def step_env(folder: str) -> dict[str, Any]:
    """The environment of every task that runs a step, as Airflow renders it."""
    from airflow.dag_processing.dagbag import DagBag

    with contextlib.redirect_stdout(sys.stderr):
        bag = DagBag(dag_folder=folder)
    found: dict[str, Any] = {}
    for dag_id, dag in bag.dags.items():
        params = {k: dag.params.get_param(k).resolve(suppress_exception=True) for k in dag.params}
        for task in dag.tasks:
            env: Any = None
            if type(task).__name__ == "KubernetesPodOperator":
                held = task.env_vars or {}
                if isinstance(held, dict):
                    env = dict(held)
                else:  # V1EnvVar objects (secret references hold no value)
                    env = {e.name: e.value for e in held if e.value is not None}
            elif type(task).__name__.endswith("DockerOperator"):  # pipec's JSON-result one too
                env = dict(task.environment or {})
            elif isinstance(getattr(task, "op_kwargs", None), dict) and "argv" in task.op_kwargs:
                env = dict(task.op_kwargs["env"])
            if env is not None:
                rendered = task.render_template(
                    env, {"params": params, "run_id": "run", "ti": _StandInTI()}
                )
                found.setdefault(dag_id, {})[task.task_id] = rendered
    return {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "env": found}


def pods(folder: str, dag_id: str) -> dict[str, Any]:
    """What the provider puts into each task's pod (no cluster needed: a dry-run build)."""
    from airflow.dag_processing.dagbag import DagBag
    from kubernetes.client import ApiClient

    with contextlib.redirect_stdout(sys.stderr):
        bag = DagBag(dag_folder=folder)
    if bag.import_errors:
        return {"errors": {k: str(v) for k, v in bag.import_errors.items()}}
    found: dict[str, Any] = {}
    api = ApiClient()
    for task in bag.dags[dag_id].tasks:
        if type(task).__name__ != "KubernetesPodOperator":
            continue
        with contextlib.redirect_stdout(sys.stderr):
            pod = task.build_pod_request_obj(dry_run=True)
        (container,) = [c for c in pod.spec.containers if c.name == "base"]
        # Serialized part by part: a mapped task's plain env holds values known only at run time.
        found[task.task_id] = {
            "resources": api.sanitize_for_serialization(container.resources) or {},
            "nodeSelector": pod.spec.node_selector or {},
            "tolerations": api.sanitize_for_serialization(pod.spec.tolerations) or [],
            "secretEnv": [
                api.sanitize_for_serialization(e) for e in container.env or [] if e.value_from
            ],
            "activeDeadlineSeconds": pod.spec.active_deadline_seconds,
        }
    return {"errors": {}, "pods": found}


RUNTIME_MODULE = "pipec.backends.runtime"


def _env_pairs(env: Any) -> list[list[str]]:
    """An operator's env in order: a dict, or Kubernetes V1EnvVar-like objects (those that take
    their value from a secret or a field are left out: they hold no value here)."""
    if not env:
        return []
    if isinstance(env, dict):
        return [[str(k), str(v)] for k, v in env.items()]
    pairs = []
    for item in env:
        name = item["name"] if isinstance(item, dict) else item.name
        value = item.get("value") if isinstance(item, dict) else item.value
        if value is not None:
            pairs.append([name, value])
    return pairs


def _runtime_call(task: Any, context: dict[str, Any]) -> dict[str, Any] | None:
    """The step runtime's argv and env of one task, rendered; None for other tasks."""
    for argv_field, env_field in (
        ("arguments", "env_vars"),  # KubernetesPodOperator
        ("command", "environment"),  # DockerOperator
        ("op_kwargs", None),  # PythonOperator running pipec's local helper
    ):
        if not hasattr(task, argv_field):
            continue
        rendered = task.render_template(getattr(task, argv_field), context)
        env = task.render_template(getattr(task, env_field), context) if env_field else None
        if argv_field == "op_kwargs":
            if not isinstance(rendered, dict) or "argv" not in rendered:
                continue
            rendered, env = rendered["argv"], rendered.get("env")
        if isinstance(rendered, list) and "--component" in rendered:
            if RUNTIME_MODULE in rendered:
                rendered = rendered[rendered.index(RUNTIME_MODULE) + 1 :]
            return {"argv": [str(a) for a in rendered], "env": _env_pairs(env)}
    return None


class _AnyLoop(dict[str, str]):
    """A flattened foreach's `scope` entry: a stand-in item for whichever enclosing loop."""

    def __missing__(self, loop: str) -> str:
        return f"xcom-item-of-{loop}"


class _StandInTI:
    """What templates may ask of the task instance when no run exists: iteration 0 of the
    first try (the step context's PIPEC_ITERATION and PIPEC_ATTEMPT), two stand-in items for
    any XCom (a loop's items), and for a flattened foreach's `-items` task its `where` and
    `scope` XComs, shaped as that task pushes them."""

    map_index = 0
    try_number = 1

    def xcom_pull(self, *args: Any, key: str | None = None, **kwargs: Any) -> list[Any]:
        if key == "where":
            return ["0/0", "0/1"]
        if key == "scope":
            return [_AnyLoop(), _AnyLoop()]
        return ["xcom-0", "xcom-1"]


class _StandInVariables:
    """`var.value.NAME` without a metadata database: a stand-in naming the Variable."""

    class _Values:
        def __getattr__(self, name: str) -> str:
            return f"<Airflow Variable {name}>"

    value = _Values()
    json = value


def render_dags(folder: str) -> dict[str, Any]:
    """Import `folder`; every runtime task's argv and env as Airflow renders them."""
    from airflow.dag_processing.dagbag import DagBag

    with contextlib.redirect_stdout(sys.stderr):
        bag = DagBag(dag_folder=folder)
    dags: dict[str, Any] = {}
    for dag_id, dag in bag.dags.items():
        params = {k: dag.params.get_param(k).resolve(suppress_exception=True) for k in dag.params}
        context = {
            "params": params,
            "run_id": "conformance_run",
            "dag": dag,
            "ti": _StandInTI(),
            "var": _StandInVariables(),
        }
        steps = {}
        for task in dag.tasks:
            call = _runtime_call(task, context)
            if call is not None:
                steps[task.task_id] = call
        dags[dag_id] = {"params": params, "steps": steps}
    return {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": dags}


def main(argv: list[str]) -> int:
    if "AIRFLOW_HOME" not in os.environ:
        print("AIRFLOW_HOME must be set to a scratch folder", file=sys.stderr)
        return 2
    command, *rest = argv
    if command == "import":
        result = import_dags(rest[0])
    elif command == "run":
        result = run_dag(rest[0], rest[1], json.loads(rest[2]))
    elif command == "run-as":
        result = run_as(rest[0], rest[1], json.loads(rest[2]), rest[3], rest[4])
    elif command == "env":
        result = step_env(rest[0])
    elif command == "pods":
        result = pods(rest[0], rest[1])
    elif command == "render":
        result = {folder: render_dags(folder) for folder in rest}
    else:
        print(f"unknown command {command!r}", file=sys.stderr)
        return 2
    sys.stdout.write(f"\n{MARKER}{json.dumps(result, sort_keys=True)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
