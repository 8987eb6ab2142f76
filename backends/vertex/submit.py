"""Submit a compiled pipeline to Vertex AI Pipelines through the REST API (v1).

`pipec run REF --target vertex [--param k=v] [--wait]` posts the emitted `pipeline_job.json` (with
the `--param` values merged into its parameter values) to
`POST {endpoint}/v1/projects/{project}/locations/{region}/pipelineJobs`, and `schedule.json` to
`.../schedules` when the pipeline has a schedule; `--wait` follows the job until it ends or
`run_timeout` passes. The request is built here, not by aiplatform.PipelineJob. Credentials are
the user's Application Default Credentials through google-auth (the `vertex` extra), imported only
when submitting; the access token goes only to the API endpoint (`common.http`).

Exit codes, output and errors as every submitter (`common.submit`).
"""

from __future__ import annotations

import copy
import importlib
import json
import urllib.parse
from typing import TYPE_CHECKING, Any

from pipec.backends.base import Bundle
from pipec.backends.common.http import JSON, JsonApi, bearer, check_url
from pipec.backends.common.submit import (
    Deadline,
    ExitCode,
    Submission,
    SubmitError,
    follow,
    submitting,
)
from pipec.backends.kubeflow.submit import parameter_values, say_failure
from pipec.ir.model import Pipeline

if TYPE_CHECKING:
    from pipec.backends.vertex import VertexBackend, VertexSettings

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
TERMINAL = {
    "PIPELINE_STATE_SUCCEEDED": ExitCode.OK,
    "PIPELINE_STATE_FAILED": ExitCode.RUN_FAILED,
    "PIPELINE_STATE_CANCELLED": ExitCode.RUN_FAILED,
}
CONSOLE = "https://console.cloud.google.com/vertex-ai"


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
    settings = backend.settings
    settings.require()
    endpoint = check_url(settings.endpoint(), "api_endpoint", "vertex")
    return submitting(
        "vertex", lambda run: _submit(run, pipeline, settings, endpoint, bundle, params, wait)
    )


def _submit(
    submission: Submission,
    pipeline: Pipeline,
    settings: VertexSettings,
    endpoint: str,
    bundle: Bundle,
    params: dict[str, Any],
    wait: bool,
) -> ExitCode:
    job: JSON = json.loads(bundle["pipeline_job.json"])
    overrides = parameter_values(pipeline, params)
    if overrides:
        job["runtimeConfig"].setdefault("parameterValues", {}).update(overrides)
    api = JsonApi(f"{endpoint}/v1", bearer(access_token(), "the Google access token"))
    parent = f"/projects/{settings.project}/locations/{settings.region}"
    created = api.request("POST", f"{parent}/pipelineJobs", job)
    name = created.get("name")
    if not isinstance(name, str) or not name:
        raise SubmitError(f"POST {api.display(parent + '/pipelineJobs')} answered without a name")
    job_id = name.rpartition("/")[2]
    console = f"{CONSOLE}/locations/{settings.region}/pipelines/runs/{job_id}"
    submission.created("pipeline job", name, f"{console}?project={settings.project}")
    if "schedule.json" in bundle:
        schedule: JSON = json.loads(bundle["schedule.json"])
        schedule["createPipelineJobRequest"]["pipelineJob"] = copy.deepcopy(job)
        made = api.request("POST", f"{parent}/schedules", schedule)
        ident = str(made.get("name") or "?")
        submission.created("schedule", ident, f"cron {pipeline.schedule!r}", primary=False)
    if not wait:
        return ExitCode.OK
    label = f"pipeline job {job_id}"
    code, last = follow(
        lambda: api.request("GET", "/" + urllib.parse.quote(name, safe="/")),
        TERMINAL,
        label=label,
        poll_interval=settings.poll_interval,
        deadline=Deadline(settings.run_timeout),
        say=submission.say,
    )
    if code is ExitCode.RUN_FAILED:
        say_failure(submission, label, last)
    return code
