"""`pipec run --target airflow`: place the DAG file in the DAGs folder and trigger a run through
Airflow 3's REST API (`/api/v2`), optionally following it to the end.

The file is written atomically (a hidden temporary file in the same folder, then a rename), so
the DAG processor never reads half a file. The run starts only once the API server reports the
DAG parsed after the file was placed (so an older version never runs) and without import
errors. Credentials come from the environment, never from settings files: `AIRFLOW_API_TOKEN`
(a bearer token), or `AIRFLOW_USERNAME` and `AIRFLOW_PASSWORD` (exchanged at `/auth/token`).
Only the standard library is used, so no extra needs installing.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipec.backends.airflow.settings import AirflowSettings
from pipec.backends.base import Bundle
from pipec.backends.files import write_files
from pipec.backends.settings import SettingsError
from pipec.ir.model import Pipeline

if TYPE_CHECKING:
    from pipec.backends.airflow import AirflowBackend

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_REFUSED = 2
POLL_SECONDS = 2.0
FINISHED = {"success": EXIT_OK, "failed": EXIT_RUN_FAILED}


class ApiError(Exception):
    """The API server refused a request or could not be reached."""


class AirflowApi:
    """A small client for the endpoints the submitter needs."""

    def __init__(self, base_url: str, environ: Mapping[str, str]) -> None:
        self.base = base_url.rstrip("/")
        self.environ = environ
        self._token: str | None = environ.get("AIRFLOW_API_TOKEN") or None

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON request; raises ApiError with the server's answer on an HTTP error."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body, sort_keys=True).encode("utf-8")
            headers["Content-Type"] = "application/json"
        token = self._bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                text = response.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:2000]
            raise ApiError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(f"cannot reach the Airflow API at {self.base}: {exc}") from None
        return json.loads(text) if text.strip() else None

    def _bearer(self) -> str | None:
        if self._token is None and self.environ.get("AIRFLOW_USERNAME"):
            credentials = {
                "username": self.environ["AIRFLOW_USERNAME"],
                "password": self.environ.get("AIRFLOW_PASSWORD", ""),
            }
            self._token = ""  # no recursion into _bearer while asking for the token
            answer = self.request("POST", "/auth/token", credentials)
            self._token = str(answer["access_token"])
        return self._token or None


def submit(
    backend: AirflowBackend,
    pipeline: Pipeline,
    bundle: Bundle,
    params: dict[str, Any],
    wait: bool,
) -> int:
    """The submitter of the airflow target (see `place_and_trigger`)."""
    return place_and_trigger(pipeline.id, backend.settings, bundle, params, wait)


def place_and_trigger(
    dag_id: str,
    settings: AirflowSettings,
    bundle: Bundle,
    params: dict[str, Any],
    wait: bool,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Place, wait for the parse, unpause, trigger, and (with `wait`) follow the run."""
    if settings.dags_folder is None:
        raise SettingsError(
            "target 'airflow' needs the setting dags_folder to run a pipeline (the folder the "
            "Airflow DAG processor reads): set it in [tool.pipec.targets.airflow] or with --set"
        )
    api = AirflowApi(settings.api_url, os.environ if environ is None else environ)
    placed_at = datetime.datetime.now(datetime.UTC)
    (dag_file,) = write_files(bundle, Path(settings.dags_folder))
    _say(f"placed {dag_file}")
    deadline = time.monotonic() + settings.run_timeout
    quoted = urllib.parse.quote(dag_id, safe="")
    try:
        if not _wait_for_parse(api, quoted, dag_file, placed_at, deadline, sleep):
            return EXIT_REFUSED
        api.request("PATCH", f"/api/v2/dags/{quoted}", {"is_paused": False})
        run = api.request(
            "POST", f"/api/v2/dags/{quoted}/dagRuns", {"logical_date": None, "conf": params}
        )
        run_id = str(run["dag_run_id"])
        print(run_id)
        _say(f"triggered run {run_id} of DAG {dag_id}")
        if not wait:
            return EXIT_OK
        return _follow(api, quoted, run_id, deadline, sleep)
    except ApiError as exc:
        _say(f"error: {exc}")
        return EXIT_REFUSED


def _wait_for_parse(
    api: AirflowApi,
    quoted: str,
    dag_file: Path,
    placed_at: datetime.datetime,
    deadline: float,
    sleep: Callable[[float], None],
) -> bool:
    """Wait until the DAG is parsed from the placed file; False (reported) on an import error
    or when the deadline passes."""
    while True:
        errors = api.request("GET", "/api/v2/importErrors?limit=1000") or {}
        for error in errors.get("import_errors", []):
            if Path(str(error.get("filename", ""))).name == dag_file.name:
                _say(f"error: Airflow could not import {dag_file.name}: {error.get('stack_trace')}")
                return False
        try:
            dag = api.request("GET", f"/api/v2/dags/{quoted}")
        except ApiError as exc:
            if "HTTP 404" not in str(exc):
                raise
            dag = None
        if dag is not None and _parsed_after(dag.get("last_parsed_time"), placed_at):
            return True
        if time.monotonic() >= deadline:
            _say("error: the DAG did not appear in Airflow in time (is the DAG processor running?)")
            return False
        sleep(POLL_SECONDS)


def _parsed_after(stamp: Any, placed_at: datetime.datetime) -> bool:
    if not isinstance(stamp, str):
        return False
    parsed = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed >= placed_at


def _follow(
    api: AirflowApi, quoted: str, run_id: str, deadline: float, sleep: Callable[[float], None]
) -> int:
    path = f"/api/v2/dags/{quoted}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
    state = ""
    while True:
        state = str(api.request("GET", path).get("state"))
        if state in FINISHED:
            _say(f"run {run_id}: {state}")
            return FINISHED[state]
        if time.monotonic() >= deadline:
            _say(f"error: run {run_id} is still {state} after the run_timeout")
            return EXIT_RUN_FAILED
        sleep(POLL_SECONDS)


def _say(message: str) -> None:
    print(f"pipec airflow: {message}", file=sys.stderr, flush=True)
