"""The airflow submitter against a stand-in for Airflow 3's REST API on 127.0.0.1: the DAG file
is placed atomically, the requests are exactly the documented ones, and every failure has its
exit code (0 ok, 1 the run failed, 2 refused); with faults from `tests/http_faults.py` (a redirect
to another host, an answer that is not JSON).

The stand-in models only the routes below (404 for the rest); it parses the DAG "instantly"
(the second look finds it) and does not validate `conf` against the DAG's params."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from pipec import driver
from pipec.backends.airflow import AirflowBackend, AirflowSettings
from pipec.backends.settings import SettingsError
from tests import http_faults
from tests.conftest import REPO
from tests.helpers import prepared

DAG_ID = "hello"
RUN_ID = "manual__2026-01-01T00:00:00+00:00"


@dataclass
class FakeAirflow:
    """What the stand-in answers, and every request it saw."""

    run_states: list[str] = field(default_factory=lambda: ["queued", "running", "success"])
    import_errors: list[dict[str, Any]] = field(default_factory=list)
    parsed: bool = False
    trigger_status: int = 200
    requests: list[tuple[str, str, Any, str | None]] = field(default_factory=list)
    faults: dict[tuple[str, str], http_faults.Reply] = field(default_factory=dict)

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if (method, path) == ("POST", "/auth/token"):
            return 201, {"access_token": "token-123"}
        if (method, path) == ("GET", "/api/v2/importErrors?limit=1000"):
            return 200, {"import_errors": self.import_errors, "total_entries": 0}
        if (method, path) == ("GET", f"/api/v2/dags/{DAG_ID}"):
            # The first look finds nothing: the DAG processor has not parsed the file yet.
            if not self.parsed:
                self.parsed = True
                return 404, {"detail": "not found"}
            return 200, {"dag_id": DAG_ID, "last_parsed_time": "2999-01-01T00:00:00Z"}
        if (method, path) == ("PATCH", f"/api/v2/dags/{DAG_ID}"):
            return 200, {"dag_id": DAG_ID, "is_paused": False}
        if (method, path) == ("POST", f"/api/v2/dags/{DAG_ID}/dagRuns"):
            if self.trigger_status != 200:
                return self.trigger_status, {"detail": "conf does not match the params"}
            return 200, {"dag_run_id": RUN_ID, "state": "queued"}
        if method == "GET" and path.startswith(f"/api/v2/dags/{DAG_ID}/dagRuns/"):
            state = self.run_states.pop(0) if len(self.run_states) > 1 else self.run_states[0]
            return 200, {"dag_run_id": RUN_ID, "state": state}
        return 404, {"detail": f"no route {method} {path}"}


@pytest.fixture
def fake() -> Iterator[tuple[FakeAirflow, str]]:
    state = FakeAirflow()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            state.requests.append(
                (self.command, self.path, body, self.headers.get("Authorization"))
            )
            fault = state.faults.get((self.command, self.path))
            if fault is not None:
                fault(self)
                return
            status, answer = state.answer(self.command, self.path, body)
            http_faults.body(status, json.dumps(answer).encode(), "application/json")(self)

        do_GET = do_POST = do_PATCH = _handle

        def log_message(self, *args: Any) -> None:
            pass

    with http_faults.serving(Handler) as url:
        yield state, url


def _submit(url: str, dags: Path, wait: bool, **environ: str) -> int:
    pipeline, settings, backend = prepared(
        str(REPO / "examples/hello.py"),
        "airflow",
        [f"api_url={url}", f"dags_folder={dags}", "run_timeout=30"],
    )
    assert isinstance(backend, AirflowBackend) and isinstance(settings, AirflowSettings)
    bundle = backend.emit(pipeline)
    from pipec.backends.airflow import submit as airflow_submit

    return airflow_submit.place_and_trigger(
        pipeline.id, settings, bundle, {"name": "Ada"}, wait, environ, sleep=lambda _: None
    )


def test_places_triggers_and_follows(
    fake: tuple[FakeAirflow, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = fake
    code = _submit(url, tmp_path, True, AIRFLOW_USERNAME="admin", AIRFLOW_PASSWORD="pw")
    assert code == 0
    out, err = capsys.readouterr()
    assert out == f"{RUN_ID}\n"  # stdout: only the run id, for scripts
    assert f"pipec airflow: run {RUN_ID}: success" in err and "pw" not in err
    expected_file = driver.compile_ref(str(REPO / "examples/hello.py"), "airflow")["hello.py"]
    assert (tmp_path / "hello.py").read_text(encoding="utf-8") == expected_file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hello.py"]  # no temporary left
    calls = [(method, path, body) for method, path, body, _ in state.requests]
    assert calls[0] == ("POST", "/auth/token", {"username": "admin", "password": "pw"})
    assert ("PATCH", "/api/v2/dags/hello", {"is_paused": False}) in calls
    trigger = (
        "POST",
        "/api/v2/dags/hello/dagRuns",
        {"conf": {"name": "Ada"}, "logical_date": None},
    )
    assert trigger in calls
    # The run is triggered only after the DAG was seen parsed, and followed to its end.
    assert calls.index(trigger) > calls.index(("GET", "/api/v2/dags/hello", None))
    polls = [c for c in calls if c[1].startswith("/api/v2/dags/hello/dagRuns/")]
    assert len(polls) == 3
    assert all(auth == "Bearer token-123" for _, path, _, auth in state.requests[1:])


def test_a_failed_run_exits_1(fake: tuple[FakeAirflow, str], tmp_path: Path) -> None:
    state, url = fake
    state.run_states = ["running", "failed"]
    assert _submit(url, tmp_path, True, AIRFLOW_API_TOKEN="tok") == 1
    assert all(auth == "Bearer tok" for *_, auth in state.requests)


def test_without_wait_returns_after_the_trigger(
    fake: tuple[FakeAirflow, str], tmp_path: Path
) -> None:
    state, url = fake
    assert _submit(url, tmp_path, False) == 0
    assert not [r for r in state.requests if "/dagRuns/" in r[1]]
    assert all(auth is None for *_, auth in state.requests)


def test_an_import_error_is_reported_and_nothing_runs(
    fake: tuple[FakeAirflow, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = fake
    state.import_errors = [{"filename": str(tmp_path / "hello.py"), "stack_trace": "SyntaxError"}]
    assert _submit(url, tmp_path, True) == 2
    assert not [r for r in state.requests if r[0] == "POST"]
    assert "could not import hello.py: SyntaxError" in capsys.readouterr().err


def test_a_refused_trigger_exits_2_with_the_servers_answer(
    fake: tuple[FakeAirflow, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = fake
    state.trigger_status = 400
    assert _submit(url, tmp_path, True) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"pipec airflow: error: POST {url}/api/v2/dags/hello/dagRuns: HTTP 400: "
        "conf does not match the params"
    )


def test_an_unreachable_server_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Port 9 (discard) on the loopback address: nothing listens there.
    assert _submit("http://127.0.0.1:9", tmp_path, False) == 2
    assert "failed: [Errno 111] Connection refused" in capsys.readouterr().err


def test_bad_credentials_stop_before_the_file_is_placed(
    fake: tuple[FakeAirflow, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = fake
    state.faults[("POST", "/auth/token")] = http_faults.body(
        401, b'{"detail": "Invalid credentials"}', "application/json"
    )
    assert _submit(url, tmp_path, True, AIRFLOW_USERNAME="admin", AIRFLOW_PASSWORD="pw") == 2
    assert list(tmp_path.iterdir()) == []
    err = capsys.readouterr().err
    assert f"POST {url}/auth/token: HTTP 401: Invalid credentials" in err and "pw" not in err


def test_dags_folder_is_required() -> None:
    pipeline, _, backend = prepared(
        str(REPO / "examples/hello.py"), "airflow", ()
    )
    with pytest.raises(SettingsError, match="dags_folder"):
        backend.submit(pipeline, {}, {}, False)


# --- faults (each of these failed before the shared client in backends/common/http.py) ---


def test_the_token_goes_to_no_other_host(
    fake: tuple[FakeAirflow, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = fake
    with http_faults.other_host() as other:
        redirect = http_faults.redirect(f"{other.url}/api/v2/importErrors?limit=1000")
        state.faults[("GET", "/api/v2/importErrors?limit=1000")] = redirect
        code = _submit(url, tmp_path, True, AIRFLOW_API_TOKEN="tok-secret")
    assert [r["headers"].get("Authorization") for r in other.requests] == []
    assert other.requests == [] and code == 2
    err = capsys.readouterr().err
    assert "(another host: nothing, and no credentials, was sent there)" in err
    assert "tok-secret" not in err


def test_an_answer_that_is_not_json_is_one_line_and_no_traceback(
    fake: tuple[FakeAirflow, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = fake
    page = b"<html><head><title>Sign in</title></head>\n<body>...</body></html>"
    state.faults[("GET", "/api/v2/importErrors?limit=1000")] = http_faults.body(
        200, page, "text/html"
    )
    assert _submit(url, tmp_path, True) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"pipec airflow: error: GET {url}/api/v2/importErrors?limit=1000: the answer is not "
        "JSON: 'Sign in'"
    )
