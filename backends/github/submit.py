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

The token comes from `GITHUB_TOKEN` (never from settings files). HTTP goes through the small
`Http` interface below (standard library only); it is meant to move onto the shared submit path
(`common/http.py`, `common/submit.py`) once that lands.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from pipec.backends.base import Bundle
from pipec.backends.github import workflow
from pipec.backends.github.settings import GithubSettings
from pipec.backends.settings import SettingsError
from pipec.ir.model import Pipeline

if TYPE_CHECKING:
    from pipec.backends.github import GithubBackend

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_REFUSED = 2
POLL_SECONDS = 5.0
API_VERSION = "2022-11-28"


class ApiError(Exception):
    """GitHub refused a request or could not be reached (one line)."""


class Http(Protocol):
    """One JSON request: (HTTP status, decoded body or None). Raises ApiError when unreachable."""

    def __call__(self, method: str, url: str, body: Any, headers: Mapping[str, str]) -> Any: ...


def urllib_http(method: str, url: str, body: Any, headers: Mapping[str, str]) -> Any:
    """`Http` over urllib: the body of a 2xx answer; ApiError with GitHub's message otherwise."""
    data = None if body is None else json.dumps(body, sort_keys=True).encode("utf-8")
    request = urllib.request.Request(url, data=data, headers=dict(headers), method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        with contextlib.suppress(json.JSONDecodeError, AttributeError):
            detail = str(json.loads(detail).get("message", detail))
        raise ApiError(
            f"{method} {urllib.parse.urlsplit(url).path}: HTTP {exc.code}: {detail[:500]}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ApiError(f"cannot reach {urllib.parse.urlsplit(url).netloc}: {exc}") from None
    return json.loads(text) if text.strip() else None


class GithubApi:
    """The few endpoints the submitter uses, for one repository."""

    def __init__(self, settings: GithubSettings, token: str, http: Http = urllib_http) -> None:
        assert settings.repository is not None
        self.base = f"{settings.api_url.rstrip('/')}/repos/{settings.repository}"
        self.headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "pipec",
        }
        self.http = http

    def call(self, method: str, path: str, body: Any = None, **query: str) -> Any:
        url = self.base + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {**self.headers, **({"Content-Type": "application/json"} if body else {})}
        return self.http(method, url, body, headers)

    def workflow_text(self, file: str, ref: str) -> str | None:
        """The committed text of a workflow file at `ref`, None when there is none."""
        try:
            found = self.call("GET", f"/contents/{urllib.parse.quote(file)}", ref=ref)
        except ApiError as exc:
            if "HTTP 404" in str(exc):
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
    http: Http = urllib_http,
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
    api = GithubApi(settings, token, http)
    file = workflow.path(pipeline)
    name = file.rsplit("/", 1)[1]
    deadline = time.monotonic() + settings.run_timeout
    try:
        committed = api.workflow_text(file, settings.ref)
        if committed != bundle[file]:
            what = "is not" if committed is None else "differs from this compile"
            _say(
                f"error: {file} {what} in {settings.repository}@{settings.ref}: run `pipec "
                f"compile REF --target github -o .`, commit and push it, then run again"
            )
            return EXIT_REFUSED
        before = {run["id"] for run in api.runs(name, settings.ref)}
        body = {"ref": settings.ref, "inputs": inputs_of(pipeline, params)}
        api.call("POST", f"/actions/workflows/{name}/dispatches", body)
        run = _find_run(api, name, settings.ref, before, deadline, sleep)
        if run is None:
            _say("error: the dispatched run did not appear before run_timeout")
            return EXIT_RUN_FAILED
        print(run["html_url"])
        _say(f"dispatched run {run['id']} of {name} on {settings.ref}")
        if not wait:
            return EXIT_OK
        return _follow(api, int(run["id"]), deadline, sleep)
    except ApiError as exc:
        _say(f"error: {exc}")
        return EXIT_REFUSED


def _find_run(
    api: GithubApi,
    name: str,
    ref: str,
    before: set[Any],
    deadline: float,
    sleep: Callable[[float], None],
) -> dict[str, Any] | None:
    """The run the dispatch started: GitHub answers a dispatch with no id, so it is the newest
    dispatched run of this workflow on `ref` that was not listed before."""
    while True:
        fresh = [run for run in api.runs(name, ref) if run["id"] not in before]
        if fresh:
            return max(fresh, key=lambda run: (str(run.get("created_at", "")), run["id"]))
        if time.monotonic() >= deadline:
            return None
        sleep(POLL_SECONDS)


def _follow(api: GithubApi, run_id: int, deadline: float, sleep: Callable[[float], None]) -> int:
    while True:
        run = api.call("GET", f"/actions/runs/{run_id}")
        if run.get("status") == "completed":
            conclusion = run.get("conclusion")
            _say(f"run {run_id}: {conclusion}")
            return EXIT_OK if conclusion == "success" else EXIT_RUN_FAILED
        if time.monotonic() >= deadline:
            _say(f"error: run {run_id} is still {run.get('status')} after run_timeout")
            return EXIT_RUN_FAILED
        sleep(POLL_SECONDS)


def _say(message: str) -> None:
    print(f"pipec github: {message}", file=sys.stderr, flush=True)
