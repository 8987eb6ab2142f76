"""`pipec run --target airflow`: place the DAG file in the DAGs folder and trigger a run through
Airflow 3's REST API (`/api/v2`), optionally following it to the end.

The file is written atomically (a hidden temporary file in the same folder, then a rename), so
the DAG processor never reads half a file. The run starts only once the API server reports the
DAG parsed after the file was placed (so an older version never runs) and without import
errors. Credentials come from the environment, never from settings files: `AIRFLOW_API_TOKEN`
(a bearer token), or `AIRFLOW_USERNAME` and `AIRFLOW_PASSWORD` (exchanged at `/auth/token` before
the file is placed). Plain JSON over HTTP (`common.http`), so no extra needs installing; exit
codes, output and errors as every submitter (`common.submit`). `run_timeout` bounds the wait for
the parse and the run together.
"""

from __future__ import annotations

import datetime
import os
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipec.backends.airflow.settings import AirflowSettings
from pipec.backends.base import Bundle
from pipec.backends.common.http import (
    ApiError,
    JsonApi,
    bearer_from_env,
    check_url,
    exchange_password,
    one_line,
)
from pipec.backends.common.submit import (
    Deadline,
    ExitCode,
    Submission,
    SubmitError,
    follow,
    submitting,
)
from pipec.backends.files import write_files
from pipec.backends.settings import SettingsError
from pipec.ir.model import Pipeline

if TYPE_CHECKING:
    from pipec.backends.airflow import AirflowBackend

FINISHED = {"success": ExitCode.OK, "failed": ExitCode.RUN_FAILED}


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
    base = check_url(settings.api_url, "api_url", "airflow")
    dags = Path(settings.dags_folder)
    env = os.environ if environ is None else environ

    def work(submission: Submission) -> ExitCode:
        api = JsonApi(base)
        api = api.with_headers(_credentials(api, env))
        trigger = _Trigger(submission, api, dag_id, settings, sleep)
        return trigger.run(bundle, dags, params, wait)

    return submitting("airflow", work)


def _credentials(api: JsonApi, environ: Mapping[str, str]) -> dict[str, str]:
    headers = bearer_from_env(environ, "AIRFLOW_API_TOKEN")
    if headers or not environ.get("AIRFLOW_USERNAME"):
        return headers
    username, password = environ["AIRFLOW_USERNAME"], environ.get("AIRFLOW_PASSWORD", "")
    return exchange_password(api, "/auth/token", username, password)


class _Trigger:
    """The requests of one submit, in order (see `place_and_trigger`)."""

    def __init__(
        self,
        submission: Submission,
        api: JsonApi,
        dag_id: str,
        settings: AirflowSettings,
        sleep: Callable[[float], None],
    ) -> None:
        self.submission = submission
        self.api = api
        self.dag_id = dag_id
        self.dag_path = f"/api/v2/dags/{urllib.parse.quote(dag_id, safe='')}"
        self.settings = settings
        self.sleep = sleep

    def run(self, bundle: Bundle, dags: Path, params: dict[str, Any], wait: bool) -> ExitCode:
        say = self.submission.say
        placed_at = datetime.datetime.now(datetime.UTC)
        (dag_file,) = write_files(bundle, dags)
        say(f"placed {dag_file}")
        deadline = Deadline(self.settings.run_timeout)
        if not self._wait_for_parse(dag_file, placed_at, deadline):
            return ExitCode.NOT_SUBMITTED
        self.api.request("PATCH", self.dag_path, {"is_paused": False})
        run = self.api.request(
            "POST", f"{self.dag_path}/dagRuns", {"logical_date": None, "conf": params}
        )
        run_id = run.get("dag_run_id")
        if not isinstance(run_id, str) or not run_id:
            raise SubmitError(f"POST {self.api.display(self.dag_path)}/dagRuns gave no dag_run_id")
        quoted = urllib.parse.quote(run_id, safe="")
        where = f"{self.api.base_url}/dags/{urllib.parse.quote(self.dag_id, safe='')}/runs/{quoted}"
        self.submission.created(f"run of DAG {self.dag_id}:", run_id, where)
        if not wait:
            return ExitCode.OK
        code, _ = follow(
            lambda: self.api.request("GET", f"{self.dag_path}/dagRuns/{quoted}"),
            FINISHED,
            label=f"run {run_id}",
            poll_interval=self.settings.poll_interval,
            deadline=deadline,
            say=say,
            sleep=self.sleep,
        )
        return code

    def _wait_for_parse(
        self, dag_file: Path, placed_at: datetime.datetime, deadline: Deadline
    ) -> bool:
        """Wait until the DAG is parsed from the placed file; False (reported) on an import error
        or when the deadline passes."""
        while True:
            errors = self.api.request("GET", "/api/v2/importErrors?limit=1000")
            listed = errors.get("import_errors")
            for error in listed if isinstance(listed, list) else []:
                if not isinstance(error, dict):
                    continue
                if Path(str(error.get("filename", ""))).name == dag_file.name:
                    self.submission.say(
                        f"error: Airflow could not import {dag_file.name}: "
                        f"{_last_line(error.get('stack_trace'))} (the whole trace: Import errors "
                        "in the Airflow UI)"
                    )
                    return False
            try:
                dag: dict[str, Any] | None = self.api.request("GET", self.dag_path)
            except ApiError as exc:
                if exc.status != 404:
                    raise
                dag = None
            if dag is not None and _parsed_after(dag.get("last_parsed_time"), placed_at):
                return True
            if deadline.passed():
                self.submission.say(
                    f"error: the DAG did not appear in Airflow within run_timeout "
                    f"({deadline.seconds:g}s): is the DAG processor running, and does it read "
                    f"{dag_file.parent}?"
                )
                return False
            self.sleep(min(self.settings.poll_interval, deadline.remaining()))


def _parsed_after(stamp: Any, placed_at: datetime.datetime) -> bool:
    if stamp is None:
        return False
    try:
        parsed = datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        shown = one_line(repr(stamp))
        raise SubmitError(f"Airflow answered a last_parsed_time that is no time: {shown}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed >= placed_at


def _last_line(trace: Any) -> str:
    lines = [line for line in str(trace).splitlines() if line.strip()]
    return one_line(lines[-1]) if lines else "(no trace)"
