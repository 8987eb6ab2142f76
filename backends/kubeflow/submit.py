"""Submit a compiled pipeline to Kubeflow Pipelines through its REST API (v2beta1).

`pipec run REF --target kubeflow --set host=URL [--param k=v] [--wait]` creates a run from the
emitted `pipeline.yaml` (and a recurring run when the pipeline has a schedule) and, with `--wait`,
follows the run until it ends or `run_timeout` passes. Plain JSON over HTTP (`common.http`), no
kfp SDK; the bearer token comes from the environment variable named by `token_env`.

Exit codes, output and errors as every submitter (`common.submit`): 0 submitted or succeeded,
1 the run did not succeed, 2 nothing was submitted.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import TYPE_CHECKING, Any

import yaml

from pipec.backends.base import Bundle
from pipec.backends.common.http import JSON, JsonApi, bearer_from_env, check_url, one_line
from pipec.backends.common.submit import (
    Deadline,
    ExitCode,
    Submission,
    SubmitError,
    follow,
    submitting,
)
from pipec.backends.kubeflow import components as kx
from pipec.backends.params import ParamError, declared_params, resolve_params
from pipec.backends.settings import SettingsError
from pipec.ir.model import Pipeline

if TYPE_CHECKING:
    from pipec.backends.kubeflow import KubeflowBackend, KubeflowSettings

TERMINAL = {
    "SUCCEEDED": ExitCode.OK,
    "SKIPPED": ExitCode.OK,
    "FAILED": ExitCode.RUN_FAILED,
    "CANCELED": ExitCode.RUN_FAILED,
}


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
    settings = backend.settings
    if not settings.host:
        raise SettingsError(
            "target 'kubeflow' needs host (the KFP API URL) to submit: set it in "
            "[tool.pipec.targets.kubeflow] or with --set host=URL"
        )
    host = check_url(settings.host, "host", "kubeflow")
    return submitting(
        "kubeflow", lambda run: _submit(run, pipeline, settings, host, bundle, params, wait)
    )


def _submit(
    submission: Submission,
    pipeline: Pipeline,
    settings: KubeflowSettings,
    host: str,
    bundle: Bundle,
    params: dict[str, Any],
    wait: bool,
) -> ExitCode:
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
    api = JsonApi(f"{host}/apis/v2beta1", bearer_from_env(os.environ, settings.token_env))
    run = api.request("POST", "/runs", body)
    run_id = run.get("run_id")
    if not isinstance(run_id, str) or not run_id:
        raise SubmitError(f"POST {api.display('/runs')} answered without a run_id")
    submission.created("run", run_id, f"{host}/#/runs/details/{run_id}")
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
        created = api.request("POST", "/recurringruns", recurring)
        ident = str(created.get("recurring_run_id") or "?")
        submission.created("recurring run", ident, f"cron {pipeline.schedule!r}", primary=False)
    if not wait:
        return ExitCode.OK
    label = f"run {run_id}"
    code, last = follow(
        lambda: api.request("GET", f"/runs/{urllib.parse.quote(run_id, safe='')}"),
        TERMINAL,
        label=label,
        poll_interval=settings.poll_interval,
        deadline=Deadline(settings.run_timeout),
        say=submission.say,
    )
    if code is ExitCode.RUN_FAILED:
        say_failure(submission, label, last)
    return code


def say_failure(submission: Submission, label: str, answer: JSON) -> None:
    """The engine's reason for a failed run, when its answer has one (`error.message`: KFP and
    Vertex AI both)."""
    error = answer.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        submission.say(f"{label} failed: {one_line(error['message'])}")
