"""The kubeflow and vertex submitters against an HTTP server on 127.0.0.1 standing in for the KFP
and Vertex AI REST APIs: exact request bodies, credentials, polling to a terminal state, and API
errors surfaced as one clear line."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from pipec.backends.kubeflow import KubeflowBackend, KubeflowSettings
from pipec.backends.vertex import VertexBackend, VertexSettings
from pipec.backends.vertex import submit as vertex_submit
from tests.conftest import REPO
from tests.helpers import prepared


@dataclass
class FakeApi:
    """Records every request; answers from a queue of (status, body) per (method, path)."""

    answers: dict[tuple[str, str], list[tuple[int, Any]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def answer(self, method: str, path: str, *replies: tuple[int, Any]) -> None:
        self.answers.setdefault((method, path), []).extend(replies)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            fake.requests.append(
                {"method": method, "path": self.path, "body": body, "headers": dict(self.headers)}
            )
            queue = fake.answers.get((method, self.path), [])
            status, data = queue.pop(0) if len(queue) > 1 else (queue[0] if queue else (404, {}))
            text = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def do_GET(self) -> None:
            self._reply("GET")

        def do_POST(self) -> None:
            self._reply("POST")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


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
    out = capsys.readouterr().out
    assert "created run r-1" in out and "r-1: SUCCEEDED" in out


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
    assert "failed: boom" in capsys.readouterr().err


def test_kubeflow_api_errors_are_one_clear_line(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answer("POST", "/apis/v2beta1/runs", (400, {"error": {"message": "invalid spec"}}))
    pipeline, settings, bundle = _kubeflow("hello", host=api.url)
    assert KubeflowBackend(settings).submit(pipeline, bundle, {}, wait=False) == 2
    err = capsys.readouterr().err
    assert "HTTP 400: invalid spec" in err and "Traceback" not in err


def test_kubeflow_checks_before_sending(capsys: pytest.CaptureFixture[str]) -> None:
    pipeline, settings, bundle = _kubeflow("hello")
    assert KubeflowBackend(settings).submit(pipeline, bundle, {}, wait=False) == 2
    assert "needs host" in capsys.readouterr().err
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
    assert "PIPELINE_STATE_SUCCEEDED" in capsys.readouterr().out


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
