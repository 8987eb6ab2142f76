"""Secrets on Vertex: the step runtime reads them from Google Secret Manager inside the container
(`--secret-manager PROJECT --secret NAME`, runtime/gcp_secrets.py), run the way Vertex runs it: the
executor's command and args from the compiled PipelineSpec, KFP's placeholders filled in as its
launcher does.

The stand-in on 127.0.0.1 is both the VM's metadata server (the job's service account token) and
the Secret Manager v1 REST API. It is strict about what it models: the token endpoint answers only
`GET` with `Metadata-Flavor: Google`; `versions/latest:access` only `GET` with
`Authorization: Bearer <the token it issued>`, for the one project it knows, answering as Secret
Manager does (`payload.data` in base64; a Google error object for 401/403/404); every other
method or path is a 404 and recorded, and the tests assert there were none.

NOT MODELLED: IAM (roles/secretmanager.secretAccessor is not checked, any request with the token
passes), token expiry and refresh, `payload.dataCrc32c` (the runtime does not verify it), versions
other than `latest`, disabled or destroyed versions, regional endpoints, TLS, quotas and retries.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipec.backends.vertex import VertexBackend, VertexSettings
from tests.helpers import load_ok

TOKEN = "ya29.stand-in-token"
PROJECT = "vault-proj"
SECRETS = {"API_TOKEN": "s3cr3t välue with spaces"}
TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
ACCESS = re.compile(r"^/v1/projects/([^/]+)/secrets/([^/]+)/versions/latest:access$")


class StandIn(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: list[tuple[str, str]] = []
        self.unexpected: list[str] = []

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: StandIn

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.path == TOKEN_PATH:
            self.send_header("Metadata-Flavor", "Google")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, text: str, message: str) -> None:
        self._answer(status, {"error": {"code": status, "message": message, "status": text}})

    def _other(self) -> None:
        self.server.unexpected.append(f"{self.command} {self.path}")
        self._error(404, "NOT_FOUND", "not modelled by the stand-in")

    do_POST = do_PUT = do_DELETE = do_PATCH = _other

    def do_GET(self) -> None:
        self.server.seen.append((self.command, self.path))
        if self.path == TOKEN_PATH:
            if self.headers.get("Metadata-Flavor") != "Google":
                self._error(403, "FORBIDDEN", "Missing Metadata-Flavor:Google header")
                return
            self._answer(200, {"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"})
            return
        match = ACCESS.match(self.path)
        if match is None:
            self._other()
            return
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
            return
        project, name = match.groups()
        resource = f"projects/{project}/secrets/{name}"
        if project != PROJECT:
            self._error(403, "PERMISSION_DENIED", f"Permission denied on resource {resource}")
            return
        if name not in SECRETS:
            self._error(404, "NOT_FOUND", f"Secret [{resource}] not found or has no versions.")
            return
        data = base64.b64encode(SECRETS[name].encode()).decode()
        self._answer(200, {"name": f"{resource}/versions/1", "payload": {"data": data}})


@pytest.fixture
def standin() -> Iterator[StandIn]:
    server = StandIn()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
    assert server.unexpected == []


STEPS = """\
import os

def reveal() -> str:
    return os.environ["API_TOKEN"]

def missing() -> str:
    return os.environ.get("NOT_THERE", "")
"""


def vertex_command(tmp_path: Path, step: str, secrets: list[str]) -> tuple[list[str], Path]:
    """The executor command of the pipeline's one step as the vertex spec has it, with KFP's
    output placeholder filled in; and the file KFP would read the output parameter from."""
    (tmp_path / "secret_steps.py").write_text(STEPS, encoding="utf-8")
    body = f"""
        from secret_steps import {step} as plain
        task = step(plain)

        @pipeline
        def p() -> None:
            task.with_options(secrets={secrets!r})()
        """
    pipeline = load_ok(tmp_path, textwrap.dedent(body))
    settings = VertexSettings(
        image="img:1",
        project="the-job-project",
        secrets_project=PROJECT,
        region="us-central1",
        pipeline_root="gs://b/root",
        code_root=str(tmp_path),
    )
    spec = yaml.safe_load(VertexBackend(settings).emit(pipeline)["pipeline.yaml"])
    assert "secretAsEnv" not in json.dumps(spec) and SECRETS["API_TOKEN"] not in json.dumps(spec)
    (executor,) = spec["deploymentSpec"]["executors"].values()
    command = [
        sys.executable,
        *executor["container"]["command"][1:],
        *executor["container"]["args"],
    ]
    out = tmp_path / "output.out"
    placeholder = re.compile(r"\{\{\$\.outputs\.parameters\['\w+'\]\.output_file\}\}")
    return [placeholder.sub(str(out), arg) for arg in command], out


def run(command: list[str], standin: StandIn, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "GCE_METADATA_HOST": standin.host,
        "PIPEC_SECRET_MANAGER_ENDPOINT": f"http://{standin.host}/v1",
    }
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def test_the_runtime_reads_the_secret_into_the_environment(
    tmp_path: Path, standin: StandIn
) -> None:
    command, out = vertex_command(tmp_path, "reveal", ["API_TOKEN"])
    at = command.index("--secret-manager")
    assert command[at : at + 4] == ["--secret-manager", PROJECT, "--secret", "API_TOKEN"]
    done = run(command, standin, tmp_path)
    assert done.returncode == 0, done.stderr
    assert out.read_text(encoding="utf-8") == SECRETS["API_TOKEN"]
    assert standin.seen == [
        ("GET", TOKEN_PATH),
        ("GET", f"/v1/projects/{PROJECT}/secrets/API_TOKEN/versions/latest:access"),
    ]
    assert SECRETS["API_TOKEN"] not in done.stdout + done.stderr


def test_a_missing_secret_fails_the_step_in_one_line(tmp_path: Path, standin: StandIn) -> None:
    command, out = vertex_command(tmp_path, "missing", ["NOT_THERE"])
    done = run(command, standin, tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "secret NOT_THERE from Secret Manager" in lines[0], done.stderr
    assert "HTTP 404" in lines[0] and "Traceback" not in done.stderr
    assert not out.exists()  # the step's code never ran


def test_a_project_the_job_may_not_read_is_one_line(tmp_path: Path, standin: StandIn) -> None:
    command, _ = vertex_command(tmp_path, "reveal", ["API_TOKEN"])
    at = command.index("--secret-manager")
    command[at + 1] = "other-project"
    done = run(command, standin, tmp_path)
    assert done.returncode == 1 and "HTTP 403" in done.stderr and "Traceback" not in done.stderr
