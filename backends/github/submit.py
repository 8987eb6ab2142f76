"""`pipec run --target github` (no `via`): dispatch the workflow on GitHub through the REST API,
find the run it started, and with `--wait` follow it to its conclusion.

1. The workflow file must already be in the repository at `ref` (GitHub runs only committed
   workflows): `GET /repos/{repo}/contents/.github/workflows/<id>.yml?ref=` must hold exactly the
   text this compile wrote, else nothing is dispatched (exit 2, with how to put it there).
2. `POST .../actions/workflows/<id>.yml/dispatches` with `ref` and the inputs (a `str` parameter
   as its text, the rest as JSON text, the form `workflow_dispatch` takes), then the run is the
   newest `workflow_dispatch` run of that workflow on `ref` that was not there before.
3. `--wait`: `GET .../actions/runs/<id>` until `completed`; `success` is exit 0, any other
   conclusion exit 1.

The token comes from `GITHUB_TOKEN` (never from settings files). Requests, exit codes, output
lines and the poll loop are the shared submit path's (`common/http.py`, `common/submit.py`).
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pipec.backends.base import Bundle
from pipec.backends.common.http import JSON, ApiError, JsonApi, bearer, check_url
from pipec.backends.common.submit import (
    Deadline,
    ExitCode,
    Submission,
    SubmitError,
    follow,
    submitting,
)
from pipec.backends.github import workflow
from pipec.backends.github.settings import GithubSettings
from pipec.backends.settings import SettingsError
from pipec.ir.model import Pipeline

if TYPE_CHECKING:
    from pipec.backends.github import GithubBackend

API_VERSION = "2022-11-28"
POLL_SECONDS = 5.0
# Every conclusion GitHub gives a completed run; only `success` is a success.
CONCLUSIONS = (
    "success",
    "failure",
    "neutral",
    "cancelled",
    "skipped",
    "timed_out",
    "action_required",
    "stale",
    "startup_failure",
)


class GithubApi:
    """The few endpoints the submitter uses, for one repository."""

    def __init__(self, settings: GithubSettings, token: str) -> None:
        assert settings.repository is not None
        base = check_url(settings.api_url, "api_url", "github").rstrip("/")
        headers = {
            **bearer(token, "GITHUB_TOKEN"),
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "pipec",
        }
        self.api = JsonApi(f"{base}/repos/{settings.repository}", headers)

    def call(self, method: str, path: str, body: Any = None, **query: str) -> JSON:
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return self.api.request(method, path + suffix, body)

    def workflow_text(self, file: str, ref: str) -> str | None:
        """The committed text of a workflow file at `ref`, None when there is none."""
        try:
            found = self.call("GET", f"/contents/{urllib.parse.quote(file)}", ref=ref)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return base64.b64decode(str(found["content"])).decode("utf-8")

    def runs(self, name: str, ref: str) -> list[dict[str, Any]]:
        answer = self.call(
            "GET", f"/actions/workflows/{name}/runs", event="workflow_dispatch", branch=ref
        )
        return list(answer.get("workflow_runs", []))


def inputs_of(pipeline: Pipeline, params: dict[str, Any]) -> dict[str, str]:
    """The dispatch's inputs: a `str` parameter's text, any other value as JSON text."""
    types = {p.name: p.type for p in pipeline.params}
    if len(pipeline.params) > workflow.MAX_INPUTS:
        return {workflow.PACKED_INPUT: json.dumps(params, sort_keys=True)} if params else {}
    return {
        name: value if types[name] == "str" else json.dumps(value, sort_keys=True)
        for name, value in sorted(params.items())
    }


def submit(
    backend: GithubBackend, pipeline: Pipeline, bundle: Bundle, params: dict[str, Any], wait: bool
) -> int:
    """The submitter of the github target (see the module docstring)."""
    return dispatch(pipeline, backend.settings, bundle, params, wait)


def dispatch(
    pipeline: Pipeline,
    settings: GithubSettings,
    bundle: Bundle,
    params: dict[str, Any],
    wait: bool,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Check the committed workflow, dispatch, find the run, and (with `wait`) follow it."""
    env = os.environ if environ is None else environ
    if settings.repository is None:
        raise SettingsError(
            "target 'github' needs the setting repository (owner/name) to dispatch a run, or "
            "--set via=act to run it here"
        )
    token = env.get("GITHUB_TOKEN")
    if not token:
        raise SettingsError(
            "set GITHUB_TOKEN to a token that may run workflows in "
            f"{settings.repository} (actions: write)"
        )
    check_url(settings.api_url, "api_url", "github")

    def work(submission: Submission) -> ExitCode:
        api = GithubApi(settings, token)  # a malformed token is an error line, not a traceback
        return _dispatch(api, pipeline, settings, bundle, params, wait, submission, sleep)

    return submitting("github", work)


def _dispatch(
    api: GithubApi,
    pipeline: Pipeline,
    settings: GithubSettings,
    bundle: Bundle,
    params: dict[str, Any],
    wait: bool,
    submission: Submission,
    sleep: Callable[[float], None],
) -> ExitCode:
    file = workflow.path(pipeline)
    name = file.rsplit("/", 1)[1]
    deadline = Deadline(settings.run_timeout)
    committed = api.workflow_text(file, settings.ref)
    if committed != bundle[file]:
        what = "is not" if committed is None else "differs from this compile"
        raise SubmitError(
            f"{file} {what} in {settings.repository}@{settings.ref}: run `pipec compile REF "
            "--target github -o .`, commit and push it, then run again"
        )
    before = {run["id"] for run in api.runs(name, settings.ref)}
    body = {"ref": settings.ref, "inputs": inputs_of(pipeline, params)}
    api.call("POST", f"/actions/workflows/{name}/dispatches", body)
    run = _find_run(api, name, settings.ref, before, deadline, sleep)
    if run is None:
        # Dispatched, but the run cannot be named: say so, without claiming nothing was sent.
        submission.made.append(f"a dispatch of {name}")
        raise SubmitError("the dispatched run did not appear before run_timeout")
    submission.created("run", str(run["id"]), str(run.get("html_url", "")))
    if not wait:
        return ExitCode.OK

    def poll() -> JSON:
        answer = api.call("GET", f"/actions/runs/{run['id']}")
        done = answer.get("status") == "completed"
        return {**answer, "state": answer.get("conclusion") if done else answer.get("status")}

    terminal = {c: ExitCode.OK if c == "success" else ExitCode.RUN_FAILED for c in CONCLUSIONS}
    code, _ = follow(
        poll,
        terminal,
        label=f"run {run['id']}",
        poll_interval=POLL_SECONDS,
        deadline=deadline,
        say=submission.say,
        sleep=sleep,
    )
    return code


def _find_run(
    api: GithubApi,
    name: str,
    ref: str,
    before: set[Any],
    deadline: Deadline,
    sleep: Callable[[float], None],
) -> dict[str, Any] | None:
    """The run the dispatch started: GitHub answers a dispatch with no id, so it is the newest
    dispatched run of this workflow on `ref` that was not listed before."""
    while True:
        fresh = [run for run in api.runs(name, ref) if run["id"] not in before]
        if fresh:
            return max(fresh, key=lambda run: (str(run.get("created_at", "")), run["id"]))
        if deadline.passed():
            return None
        sleep(min(POLL_SECONDS, deadline.remaining()))
