"""Submit a compiled pipeline to Vertex AI Pipelines through the REST API (v1).

`pipec run REF --target vertex [--param k=v] [--wait]` posts the emitted `pipeline_job.json` (with
the `--param` values merged into its parameter values) to
`POST {endpoint}/v1/projects/{project}/locations/{region}/pipelineJobs`, and `schedule.json` to
`.../schedules` when the pipeline has a schedule; `--wait` polls the job until it ends. The request
is built here, not by aiplatform.PipelineJob. Credentials are the user's Application Default
Credentials through google-auth (the `vertex` extra), imported only when submitting.

Exit codes as in `kubeflow_submit`: 0 ok, 1 the job failed or was cancelled, 2 nothing was sent.
"""

from __future__ import annotations

import copy
import importlib
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from pipec.backends.base import Bundle
from pipec.backends.kubeflow.submit import (
    EXIT_NOT_SUBMITTED,
    EXIT_OK,
    SubmitError,
    parameter_values,
    request_json,
)
from pipec.ir.model import Pipeline

if TYPE_CHECKING:
    from pipec.backends.vertex import VertexBackend, VertexSettings

JSON = dict[str, Any]
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
TERMINAL = {
    "PIPELINE_STATE_SUCCEEDED": 0,
    "PIPELINE_STATE_FAILED": 1,
    "PIPELINE_STATE_CANCELLED": 1,
}


def access_token() -> str:
    """An OAuth access token from the user's Application Default Credentials."""
    try:
        google_auth: Any = importlib.import_module("google.auth")
        transport: Any = importlib.import_module("google.auth.transport.requests")
    except ImportError:
        raise SubmitError(
            "submitting to Vertex AI needs google-auth: pip install 'pipec[vertex]'"
        ) from None
    try:
        credentials, _ = google_auth.default(scopes=SCOPES)
        credentials.refresh(transport.Request())
    except Exception as exc:  # google-auth raises several unrelated types for "no credentials"
        raise SubmitError(
            f"no usable Google credentials ({type(exc).__name__}: {exc}); run "
            "`gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
        ) from None
    token = getattr(credentials, "token", None)
    if not token:
        raise SubmitError("the Google credentials gave no access token")
    return str(token)


def submit(
    backend: VertexBackend,
    pipeline: Pipeline,
    bundle: Bundle,
    params: dict[str, Any],
    wait: bool,
) -> int:
    """Create the PipelineJob (and Schedule); follow the job when `wait`. Returns the exit code."""
    try:
        backend.settings.require()
        return _submit(pipeline, backend.settings, bundle, params, wait)
    except SubmitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOT_SUBMITTED


def _submit(
    pipeline: Pipeline,
    settings: VertexSettings,
    bundle: Bundle,
    params: dict[str, Any],
    wait: bool,
) -> int:
    job: JSON = json.loads(bundle["pipeline_job.json"])
    overrides = parameter_values(pipeline, params)
    if overrides:
        job["runtimeConfig"].setdefault("parameterValues", {}).update(overrides)
    headers = {"Authorization": f"Bearer {access_token()}"}
    parent = f"{settings.endpoint()}/v1/projects/{settings.project}/locations/{settings.region}"
    created = request_json("POST", f"{parent}/pipelineJobs", job, headers)
    name = str(created.get("name", ""))
    if not name:
        raise SubmitError(f"Vertex AI created no job (answer: {json.dumps(created)[:300]})")
    print(f"created pipeline job {name}")
    if "schedule.json" in bundle:
        schedule: JSON = json.loads(bundle["schedule.json"])
        schedule["createPipelineJobRequest"]["pipelineJob"] = copy.deepcopy(job)
        made = request_json("POST", f"{parent}/schedules", schedule, headers)
        print(f"created schedule {made.get('name', '?')} on {pipeline.schedule!r}")
    if not wait:
        return EXIT_OK
    state = ""
    while state not in TERMINAL:
        time.sleep(settings.poll_interval)
        current = request_json("GET", f"{settings.endpoint()}/v1/{name}", None, headers)
        new_state = str(current.get("state", ""))
        if new_state != state:
            print(f"{name}: {new_state or 'unknown'}")
            state = new_state
        if TERMINAL.get(state):
            error = current.get("error") or {}
            if isinstance(error, dict) and error.get("message"):
                print(f"{name} failed: {error['message']}", file=sys.stderr)
    return TERMINAL[state]
