"""The kubeflow and vertex submitters against an HTTP server on 127.0.0.1 standing in for the KFP
and Vertex AI REST APIs: exact request bodies, credentials, polling to a terminal state, and API
errors surfaced as one clear line; with the faults of `tests/http_faults.py`: redirects to another
host, huge and trickling answers, HTML error pages, runs without a state.

The stand-in answers the routes a test queues and 404 to everything else; it does not check what
KFP or Vertex would reject (the request bodies are compared exactly instead)."""

from __future__ import annotations

import json
import sys
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from pipec.backends.common import http
from pipec.backends.kubeflow import KubeflowBackend, KubeflowSettings
from pipec.backends.settings import SettingsError
from pipec.backends.vertex import VertexBackend, VertexSettings
from pipec.backends.vertex import submit as vertex_submit
from pipec.cli import main
from tests import http_faults
from tests.conftest import REPO
from tests.helpers import prepared

Answer = tuple[int, Any] | http_faults.Reply


@dataclass
class FakeApi:
    """Records every request; answers from a queue per (method, path): (status, JSON) or a
    fault from `http_faults`. The last answer of a queue repeats."""

    answers: dict[tuple[str, str], list[Answer]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def answer(self, method: str, path: str, *replies: Answer) -> None:
        self.answers.setdefault((method, path), []).extend(replies)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            fake.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "body": body,
                    "headers": dict(self.headers),
                }
            )
            queue = fake.answers.get((self.command, self.path), [])
            reply = queue.pop(0) if len(queue) > 1 else (queue[0] if queue else (404, {}))
            if callable(reply):
                reply(self)
                return
            status, data = reply
            http_faults.body(status, json.dumps(data).encode(), "application/json")(self)

        do_GET = do_POST = _reply

        def log_message(self, *args: Any) -> None:
            pass

    with http_faults.serving(Handler) as url:
        fake.url = url
        yield fake


@pytest.fixture
def stream() -> Iterator[http_faults.Stream]:
    made = http_faults.Stream()
    yield made
    made.stop.set()


@pytest.fixture
def short_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """One second for each request instead of a minute (the trickle tests)."""
    monkeypatch.setattr(http, "REQUEST_SECONDS", 1.0)


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def _kubeflow(example: str, **overrides: Any) -> tuple[Any, KubeflowSettings, dict[str, str]]:
    pipeline, settings, backend = prepared(
        f"examples/{example}.py", "kubeflow", [f"{k}={v}" for k, v in overrides.items()]
    )
    assert isinstance(settings, KubeflowSettings)
    return pipeline, settings, backend.emit(pipeline)


def test_kubeflow_creates_a_run_and_a_recurring_run_and_waits(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answer("POST", "/apis/v2beta1/runs", (200, {"run_id": "r-1"}))
    api.answer("POST", "/apis/v2beta1/recurringruns", (200, {"recurring_run_id": "rr-1"}))
    api.answer(
        "GET",
        "/apis/v2beta1/runs/r-1",
        (200, {"state": "PENDING"}),
        (200, {"state": "RUNNING"}),
        (200, {"state": "SUCCEEDED"}),
    )
    monkeypatch.setenv("KFP_TOKEN", "secret-token")
    pipeline, settings, bundle = _kubeflow("training", host=api.url, poll_interval=0.01)
    code = KubeflowBackend(settings).submit(pipeline, bundle, {"n": 7, "lrs": [0.5]}, wait=True)
    assert code == 0
    run, recurring, *polls = api.requests
    assert run["method"] == "POST" and run["path"] == "/apis/v2beta1/runs"
    assert run["headers"]["Authorization"] == "Bearer secret-token"
    documents = list(yaml.safe_load_all(bundle["pipeline.yaml"]))
    assert run["body"] == {
        "display_name": "training",
        "description": pipeline.description,
        "pipeline_spec": {"pipeline_spec": documents[0], "platform_spec": documents[1]},
        "runtime_config": {
            "parameters": {"n": 7, "lrs": [0.5]},
            "pipeline_root": "minio://mlpipeline/pipec-examples",
        },
    }
    assert recurring["body"]["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * *"}}
    assert recurring["body"]["pipeline_spec"] == run["body"]["pipeline_spec"]
    assert recurring["body"]["mode"] == "ENABLE"
    assert [p["path"] for p in polls] == ["/apis/v2beta1/runs/r-1"] * 3
    out, err = capsys.readouterr()
    assert out == "r-1\n"  # stdout: only the run id, for scripts
    assert f"pipec kubeflow: created run r-1 ({api.url}/#/runs/details/r-1)" in err
    assert "pipec kubeflow: created recurring run rr-1" in err
    assert [line for line in err.splitlines() if "run r-1: " in line] == [
        "pipec kubeflow: run r-1: PENDING",
        "pipec kubeflow: run r-1: RUNNING",
        "pipec kubeflow: run r-1: SUCCEEDED",
    ]


def test_kubeflow_failed_run_exits_1_and_no_token_sends_no_header(
    api: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KFP_TOKEN", raising=False)
    api.answer("POST", "/apis/v2beta1/runs", (200, {"run_id": "r-2"}))
    api.answer(
        "GET", "/apis/v2beta1/runs/r-2", (200, {"state": "FAILED", "error": {"message": "boom"}})
    )
    pipeline, settings, bundle = _kubeflow("hello", host=api.url, poll_interval=0.01)
    assert KubeflowBackend(settings).submit(pipeline, bundle, {}, wait=True) == 1
    assert "Authorization" not in api.requests[0]["headers"]
    assert api.requests[0]["body"]["pipeline_spec"] == yaml.safe_load(bundle["pipeline.yaml"])
    assert "pipec kubeflow: run r-2 failed: boom" in capsys.readouterr().err


def test_kubeflow_api_errors_are_one_clear_line(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answer("POST", "/apis/v2beta1/runs", (400, {"error": {"message": "invalid spec"}}))
    pipeline, settings, bundle = _kubeflow("hello", host=api.url)
    assert KubeflowBackend(settings).submit(pipeline, bundle, {}, wait=False) == 2
    err = capsys.readouterr().err
    where = f"POST {api.url}/apis/v2beta1/runs"
    assert err == f"pipec kubeflow: error: {where}: HTTP 400: invalid spec\n"


def test_kubeflow_checks_before_sending(capsys: pytest.CaptureFixture[str]) -> None:
    pipeline, settings, bundle = _kubeflow("hello")
    with pytest.raises(SettingsError, match="needs host"):
        KubeflowBackend(settings).submit(pipeline, bundle, {}, wait=False)
    pipeline, settings, bundle = _kubeflow("hello", host="kfp.example.com")
    with pytest.raises(SettingsError, match="host must be an http:// or https:// URL"):
        KubeflowBackend(settings).submit(pipeline, bundle, {}, wait=False)
    pipeline, settings, bundle = _kubeflow("hello", host="http://127.0.0.1:9")
    assert KubeflowBackend(settings).submit(pipeline, bundle, {"nope": 1}, wait=False) == 2
    assert "unknown parameter 'nope'" in capsys.readouterr().err
    assert KubeflowBackend(settings).submit(pipeline, bundle, {"name": 3}, wait=False) == 2
    assert "parameter 'name' expects str" in capsys.readouterr().err
    # nothing listens on port 9: a connection error, not a traceback
    assert KubeflowBackend(settings).submit(pipeline, bundle, {}, wait=False) == 2
    assert "failed:" in capsys.readouterr().err


def _vertex(example: str, api: FakeApi) -> tuple[Any, VertexSettings, dict[str, str]]:
    pipeline, settings, backend = prepared(
        f"examples/{example}.py",
        "vertex",
        [f"api_endpoint={api.url}", "poll_interval=0.01"],
    )
    assert isinstance(settings, VertexSettings)
    return pipeline, settings, backend.emit(pipeline)


def test_vertex_posts_the_exact_job_with_credentials_and_waits(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(vertex_submit, "access_token", lambda: "ya29.token")
    parent = "/v1/projects/acme-ml/locations/us-central1"
    name = "projects/acme-ml/locations/us-central1/pipelineJobs/iris-1"
    api.answer("POST", f"{parent}/pipelineJobs", (200, {"name": name}))
    api.answer(
        "GET",
        f"/v1/{name}",
        (200, {"state": "PIPELINE_STATE_RUNNING"}),
        (200, {"state": "PIPELINE_STATE_SUCCEEDED"}),
    )
    pipeline, settings, bundle = _vertex("iris", api)
    code = VertexBackend(settings).submit(pipeline, bundle, {"min_accuracy": 0.8}, wait=True)
    assert code == 0
    created = api.requests[0]
    assert created["headers"]["Authorization"] == "Bearer ya29.token"
    expected = json.loads(bundle["pipeline_job.json"])
    expected["runtimeConfig"]["parameterValues"]["min_accuracy"] = 0.8
    assert created["body"] == expected
    assert [r["path"] for r in api.requests[1:]] == [f"/v1/{name}"] * 2
    out, err = capsys.readouterr()
    assert out == f"{name}\n"
    assert "pipec vertex: pipeline job iris-1: PIPELINE_STATE_SUCCEEDED" in err
    assert "console.cloud.google.com/vertex-ai/locations/us-central1/pipelines/runs/iris-1" in err


def test_vertex_errors_and_missing_google_auth(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline, settings, bundle = _vertex("hello", api)
    monkeypatch.setitem(sys.modules, "google.auth", None)
    assert VertexBackend(settings).submit(pipeline, bundle, {}, wait=False) == 2
    assert "pip install 'pipec[vertex]'" in capsys.readouterr().err
    assert api.requests == []

    monkeypatch.setattr(vertex_submit, "access_token", lambda: "t")
    api.answer(
        "POST",
        "/v1/projects/acme-ml/locations/us-central1/pipelineJobs",
        (403, {"error": {"code": 403, "message": "Permission denied on project acme-ml"}}),
    )
    assert VertexBackend(settings).submit(pipeline, bundle, {}, wait=False) == 2
    assert "HTTP 403: Permission denied on project acme-ml" in capsys.readouterr().err


def test_vertex_scheduled_pipeline_also_creates_the_schedule(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from tests.helpers import load_ok

    monkeypatch.setattr(vertex_submit, "access_token", lambda: "t")
    pipeline = load_ok(
        tmp_path,
        """
        @step
        def f(x: int) -> None:
            pass

        @pipeline(schedule="*/5 * * * *")
        def p(x: int = 1) -> None:
            f(x=x)
        """,
    )
    settings = VertexSettings(
        image="i", project="p", region="r", pipeline_root="gs://b", api_endpoint=api.url
    )
    bundle = VertexBackend(settings).emit(pipeline)
    api.answer("POST", "/v1/projects/p/locations/r/pipelineJobs", (200, {"name": "j"}))
    api.answer("POST", "/v1/projects/p/locations/r/schedules", (200, {"name": "s"}))
    assert VertexBackend(settings).submit(pipeline, bundle, {"x": 5}, wait=False) == 0
    job, schedule = (r["body"] for r in api.requests)
    assert job["runtimeConfig"]["parameterValues"] == {"x": 5}
    assert schedule["cron"] == "*/5 * * * *"
    assert schedule["createPipelineJobRequest"]["pipelineJob"] == job


def test_a_missing_setting_is_the_clis_error_exit_2_on_every_submitting_target(
    tmp_path: Any,
) -> None:
    runner = CliRunner()
    done = runner.invoke(main, ["run", "examples/hello.py", "--target", "kubeflow"])
    assert done.exit_code == 2, done.output
    assert done.stderr.startswith("error: target 'kubeflow' needs host")
    done = runner.invoke(main, ["run", "examples/hello.py", "--target", "airflow"])
    assert done.exit_code == 2, done.output
    assert done.stderr.startswith("error: target 'airflow' needs the setting dags_folder")
    done = runner.invoke(
        main, ["run", "examples/hello.py", "--target", "vertex", "--set", "project="]
    )
    assert done.exit_code == 2, done.output
    assert done.stderr.startswith("error: target 'vertex' needs project")


# --- faults (each of these failed before the shared client in backends/common/http.py) ---


def test_kubeflow_sends_its_token_to_no_other_host(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KFP_TOKEN", "secret-token")
    with http_faults.other_host() as other:
        api.answer("POST", "/apis/v2beta1/runs", http_faults.redirect(f"{other.url}/steal"))
        pipeline, settings, bundle = _kubeflow("hello", host=api.url)
        code = KubeflowBackend(settings).submit(pipeline, bundle, {}, wait=False)
    assert [r["headers"].get("Authorization") for r in other.requests] == []
    assert other.requests == [] and code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "secret-token" not in err
    assert f"HTTP 302 redirect to {other.url}/steal (another host: nothing" in err


def test_kubeflow_redirect_while_following_exits_1_naming_the_run(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KFP_TOKEN", "secret-token")
    with http_faults.other_host() as other:
        api.answer("POST", "/apis/v2beta1/runs", (200, {"run_id": "r-3"}))
        api.answer("GET", "/apis/v2beta1/runs/r-3", http_faults.redirect(f"{other.url}/r-3", 307))
        pipeline, settings, bundle = _kubeflow("hello", host=api.url, poll_interval=0.01)
        code = http_faults.finishes(
            lambda: KubeflowBackend(settings).submit(pipeline, bundle, {}, wait=True)
        )
    assert code == 1
    assert [r["headers"].get("Authorization") for r in other.requests] == []
    assert other.requests == []
    assert "(created before the error: run r-3)" in capsys.readouterr().err


def test_kubeflow_stops_reading_a_400_mb_answer(
    api: FakeApi, stream: http_faults.Stream, capsys: pytest.CaptureFixture[str]
) -> None:
    # No Content-Length: the body only ends when the server closes, so the client must count.
    api.answer("POST", "/apis/v2beta1/runs", http_faults.huge(400 * http_faults.MB, stream, False))
    pipeline, settings, bundle = _kubeflow("hello", host=api.url)
    tracemalloc.start()
    try:
        code = KubeflowBackend(settings).submit(pipeline, bundle, {}, wait=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # What the server got out before the client hung up: the limit plus socket buffers.
    assert stream.sent < 100 * http_faults.MB
    assert peak < 100 * http_faults.MB
    assert code == 2
    assert "over the 16777216 bytes limit; stopped reading" in capsys.readouterr().err


def test_kubeflow_trickling_answer_hits_the_request_deadline(
    api: FakeApi,
    stream: http_faults.Stream,
    short_requests: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # One byte every 50 ms: every socket read succeeds long before a socket timeout.
    api.answer("POST", "/apis/v2beta1/runs", http_faults.trickle(stream, 0.05))
    pipeline, settings, bundle = _kubeflow("hello", host=api.url)
    code = http_faults.finishes(
        lambda: KubeflowBackend(settings).submit(pipeline, bundle, {}, wait=False)
    )
    assert code == 2
    assert "no complete answer within 1s" in capsys.readouterr().err


def test_kubeflow_wait_on_a_run_without_state_fails_instead_of_looping(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answer("POST", "/apis/v2beta1/runs", (200, {"run_id": "r-4"}))
    api.answer("GET", "/apis/v2beta1/runs/r-4", (200, {"run_id": "r-4", "display_name": "x"}))
    pipeline, settings, bundle = _kubeflow("hello", host=api.url, poll_interval=0.01)
    code = http_faults.finishes(
        lambda: KubeflowBackend(settings).submit(pipeline, bundle, {}, wait=True)
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "run r-4: the API's answer has no state, so the run cannot be followed" in err


def test_kubeflow_wait_gives_up_after_run_timeout(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answer("POST", "/apis/v2beta1/runs", (200, {"run_id": "r-5"}))
    api.answer("GET", "/apis/v2beta1/runs/r-5", (200, {"state": "RUNNING"}))
    pipeline, settings, bundle = _kubeflow(
        "hello", host=api.url, poll_interval=0.01, run_timeout=0.2
    )
    assert KubeflowBackend(settings).submit(pipeline, bundle, {}, wait=True) == 1
    assert "run r-5 is still RUNNING after run_timeout (0.2s)" in capsys.readouterr().err


def test_kubeflow_html_error_page_is_one_line(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answer(
        "POST", "/apis/v2beta1/runs", http_faults.body(503, http_faults.ERROR_PAGE, "text/html")
    )
    pipeline, settings, bundle = _kubeflow("hello", host=api.url)
    assert KubeflowBackend(settings).submit(pipeline, bundle, {}, wait=False) == 2
    err = capsys.readouterr().err
    assert err == (
        f"pipec kubeflow: error: POST {api.url}/apis/v2beta1/runs: HTTP 503: "
        "503 Service Temporarily Unavailable\n"
    )


def test_vertex_sends_its_token_to_no_other_host(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(vertex_submit, "access_token", lambda: "ya29.token")
    parent = "/v1/projects/acme-ml/locations/us-central1"
    with http_faults.other_host() as other:
        api.answer("POST", f"{parent}/pipelineJobs", http_faults.redirect(f"{other.url}/x", 303))
        pipeline, settings, bundle = _vertex("hello", api)
        code = VertexBackend(settings).submit(pipeline, bundle, {}, wait=False)
    assert [r["headers"].get("Authorization") for r in other.requests] == []
    assert other.requests == [] and code == 2
    err = capsys.readouterr().err
    assert "HTTP 303 redirect" in err and "ya29" not in err


def test_vertex_wait_on_a_job_without_state_fails_instead_of_looping(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(vertex_submit, "access_token", lambda: "t")
    parent = "/v1/projects/acme-ml/locations/us-central1"
    name = "projects/acme-ml/locations/us-central1/pipelineJobs/hello-1"
    api.answer("POST", f"{parent}/pipelineJobs", (200, {"name": name}))
    api.answer("GET", f"/v1/{name}", (200, {"name": name}))
    pipeline, settings, bundle = _vertex("hello", api)
    code = http_faults.finishes(
        lambda: VertexBackend(settings).submit(pipeline, bundle, {}, wait=True)
    )
    assert code == 1
    assert "pipeline job hello-1: the API's answer has no state" in capsys.readouterr().err
