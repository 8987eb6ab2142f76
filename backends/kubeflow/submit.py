"""Submit a compiled pipeline to Kubeflow Pipelines through its REST API (v2beta1).

`pipec run REF --target kubeflow --set host=URL [--param k=v] [--wait]` creates a run from the
emitted `pipeline.yaml` (and a recurring run when the pipeline has a schedule) and, with `--wait`,
polls the run until it reaches a terminal state. Plain HTTP (urllib) and JSON; no kfp SDK.

Exit codes: 0 submitted (or, with --wait, succeeded), 1 the run failed or was canceled, 2 nothing
could be submitted (a missing setting or parameter, an API or connection error; one clear line).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import yaml

from pipec.backends.base import Bundle
from pipec.backends.kubeflow import components as kx
from pipec.backends.params import ParamError, declared_params, resolve_params
from pipec.ir.model import Pipeline

if TYPE_CHECKING:
    from pipec.backends.kubeflow import KubeflowBackend, KubeflowSettings

JSON = dict[str, Any]
EXIT_OK, EXIT_FAILED, EXIT_NOT_SUBMITTED = 0, 1, 2
TERMINAL = {
    "SUCCEEDED": EXIT_OK,
    "SKIPPED": EXIT_OK,
    "FAILED": EXIT_FAILED,
    "CANCELED": EXIT_FAILED,
}


class SubmitError(Exception):
    """Nothing (more) could be sent: the message says why, in one line."""


def request_json(
    method: str, url: str, body: JSON | None, headers: dict[str, str], timeout: float = 60.0
) -> JSON:
    """One JSON request; API errors and unreachable hosts become a SubmitError."""
    data = None if body is None else json.dumps(body, sort_keys=True).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for key, value in headers.items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        raise SubmitError(
            f"{method} {url} failed with HTTP {exc.code}: {api_message(detail)}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SubmitError(f"{method} {url} failed: {reason}") from None
    if not text.strip():
        return {}
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        raise SubmitError(f"{method} {url} answered with non-JSON text: {text[:200]!r}") from None
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def api_message(text: str) -> str:
    """The human part of an API error body (KFP and Google APIs both use `message`)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()[:500] or "(no message)"
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return text.strip()[:500]


def parameter_values(pipeline: Pipeline, params: dict[str, Any]) -> JSON:
    """`--param` values checked against the pipeline (the shared check) and shaped as KFP holds
    them."""
    try:
        resolved = resolve_params(declared_params(pipeline), params)
    except ParamError as exc:
        raise SubmitError(str(exc)) from None
    type_of = {p.name: p.type for p in pipeline.params}
    return {name: kx.kfp_value(resolved[name], type_of[name]) for name in params}


def pipeline_spec_field(bundle: Bundle) -> JSON:
    """The run's `pipeline_spec`: the spec, wrapped with its platform spec when there is one."""
    documents = list(yaml.safe_load_all(bundle["pipeline.yaml"]))
    if len(documents) > 1:
        return {"pipeline_spec": documents[0], "platform_spec": documents[1]}
    spec: JSON = documents[0]
    return spec


def kfp_cron(cron: str) -> str:
    """KFP's cron has a leading seconds field; pipec schedules are the usual five fields."""
    fields = cron.split()
    return " ".join(["0", *fields]) if len(fields) == 5 else cron


def submit(
    backend: KubeflowBackend,
    pipeline: Pipeline,
    bundle: Bundle,
    params: dict[str, Any],
    wait: bool,
) -> int:
    """Create the run (and recurring run); follow it when `wait`. Returns the exit code."""
    try:
        return _submit(pipeline, backend.settings, bundle, params, wait)
    except SubmitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOT_SUBMITTED


def _submit(
    pipeline: Pipeline,
    settings: KubeflowSettings,
    bundle: Bundle,
    params: dict[str, Any],
    wait: bool,
) -> int:
    if not settings.host:
        raise SubmitError(
            "target 'kubeflow' needs host (the KFP API URL) to submit: set it in "
            "[tool.pipec.targets.kubeflow] or with --set host=URL"
        )
    base = settings.host.rstrip("/") + "/apis/v2beta1"
    headers: dict[str, str] = {}
    token = os.environ.get(settings.token_env, "")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    runtime: JSON = {"parameters": parameter_values(pipeline, params)}
    if settings.artifact_root:
        runtime["pipeline_root"] = settings.artifact_root
    body: JSON = {
        "display_name": pipeline.name,
        "pipeline_spec": pipeline_spec_field(bundle),
        "runtime_config": runtime,
    }
    if pipeline.description:
        body["description"] = pipeline.description
    if settings.experiment_id:
        body["experiment_id"] = settings.experiment_id
    run = request_json("POST", f"{base}/runs", body, headers)
    run_id = str(run.get("run_id", ""))
    if not run_id:
        raise SubmitError(f"the KFP API created no run (answer: {json.dumps(run)[:300]})")
    print(f"created run {run_id} ({settings.host.rstrip('/')}/#/runs/details/{run_id})")
    if pipeline.schedule:
        recurring = dict(body)
        recurring.update(
            {
                "mode": "ENABLE",
                "max_concurrency": "1",
                "no_catchup": True,
                "trigger": {"cron_schedule": {"cron": kfp_cron(pipeline.schedule)}},
            }
        )
        created = request_json("POST", f"{base}/recurringruns", recurring, headers)
        print(
            f"created recurring run {created.get('recurring_run_id', '?')} on {pipeline.schedule!r}"
        )
    if not wait:
        return EXIT_OK
    state = ""
    while state not in TERMINAL:
        time.sleep(settings.poll_interval)
        current = request_json("GET", f"{base}/runs/{run_id}", None, headers)
        new_state = str(current.get("state", ""))
        if new_state != state:
            print(f"run {run_id}: {new_state or 'unknown'}")
            state = new_state
        if TERMINAL.get(state):
            error = current.get("error") or {}
            if isinstance(error, dict) and error.get("message"):
                print(f"run {run_id} failed: {error['message']}", file=sys.stderr)
    return TERMINAL[state]
