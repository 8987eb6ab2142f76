"""The REST dispatch (`pipec run --target github`, no `via`) against a stand-in for GitHub's API
on 127.0.0.1.

The stand-in is strict about what it models: the bearer token, the API version and Accept
headers, the exact paths and query strings, the dispatch body (`ref` and string `inputs` only,
every input declared by the committed workflow), a 204 with no body for the dispatch, runs that
appear only after the dispatch, and run status moving queued -> in_progress -> completed.
It does not model: pagination of run lists, rate limits, permissions beyond "the token is
right", the `return_run_details` variant of the dispatch answer, workflow_call, or GitHub
checking input types (it only checks they are strings).
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from pipec.backends.github import submit
from pipec.backends.settings import SettingsError
from tests.helpers import prepared

REPO_NAME = "acme/pipelines"
TOKEN = "ghp_test_token"
FILE = ".github/workflows/hello.yml"


@dataclass
class FakeGithub:
    """What the stand-in holds and answers, and every request it saw."""

    committed: str | None = None
    conclusion: str = "success"
    runs: list[dict[str, Any]] = field(default_factory=list)
    polls: int = 0
    seen: list[tuple[str, str, Any]] = field(default_factory=list)

    def answer(self, method: str, target: str, headers: Any, body: Any) -> tuple[int, Any]:
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, {"message": "Bad credentials"}
        if headers.get("X-GitHub-Api-Version") != "2022-11-28" or (
            headers.get("Accept") != "application/vnd.github+json"
        ):
            return 400, {"message": "missing API version or Accept header"}
        url = urllib.parse.urlsplit(target)
        query = dict(urllib.parse.parse_qsl(url.query))
        base = f"/repos/{REPO_NAME}"
        if method == "GET" and url.path == f"{base}/contents/{FILE}":
            if query != {"ref": "main"} or self.committed is None:
                return 404, {"message": "Not Found"}
            content = base64.b64encode(self.committed.encode()).decode()
            return 200, {"type": "file", "encoding": "base64", "content": content}
        if method == "GET" and url.path == f"{base}/actions/workflows/hello.yml/runs":
            if query != {"event": "workflow_dispatch", "branch": "main"}:
                return 422, {"message": f"unexpected query {query}"}
            return 200, {"total_count": len(self.runs), "workflow_runs": self.runs}
        if method == "POST" and url.path == f"{base}/actions/workflows/hello.yml/dispatches":
            return self._dispatch(body)
        if method == "GET" and url.path.startswith(f"{base}/actions/runs/"):
            run_id = int(url.path.rsplit("/", 1)[1])
            (run,) = [r for r in self.runs if r["id"] == run_id]
            self.polls += 1
            status = ["queued", "in_progress", "completed"][min(self.polls - 1, 2)]
            conclusion = self.conclusion if status == "completed" else None
            return 200, {**run, "status": status, "conclusion": conclusion}
        return 404, {"message": f"no route {method} {url.path}"}

    def _dispatch(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or set(body) - {"ref", "inputs"} or body.get("ref") != "main":
            return 422, {"message": f"invalid body {body}"}
        declared = yaml.safe_load(self.committed or "")["on"]["workflow_dispatch"]["inputs"]
        for name, value in body.get("inputs", {}).items():
            if name not in declared or not isinstance(value, str):
                return 422, {"message": f"Unexpected inputs provided: {name}"}
        run_id = 1000 + len(self.runs)
        self.runs.append(
            {
                "id": run_id,
                "created_at": "2026-01-01T00:00:00Z",
                "status": "queued",
                "html_url": f"https://github.com/{REPO_NAME}/actions/runs/{run_id}",
            }
        )
        return 204, None


@pytest.fixture
def github() -> Iterator[tuple[FakeGithub, str]]:
    fake = FakeGithub()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            fake.seen.append((self.command, self.path, body))
            status, answer = fake.answer(self.command, self.path, self.headers, body)
            self.send_response(status)
            data = b"" if answer is None else json.dumps(answer).encode()
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def setup(url: str, *more: str) -> tuple[Any, Any, dict[str, str]]:
    pipeline, settings, backend = prepared(
        "examples/hello.py", "github", [f"repository={REPO_NAME}", f"api_url={url}", *more]
    )
    return pipeline, settings, backend.emit(pipeline)


def test_dispatch_finds_the_run_and_follows_it(github: tuple[FakeGithub, str]) -> None:
    fake, url = github
    pipeline, settings, bundle = setup(url)
    fake.committed = bundle[FILE]
    code = submit.dispatch(
        pipeline,
        settings,
        bundle,
        {"name": "Ada $(x)"},
        True,
        environ={"GITHUB_TOKEN": TOKEN},
        sleep=lambda _: None,
    )
    assert code == 0
    posts = [body for method, _, body in fake.seen if method == "POST"]
    assert posts == [{"ref": "main", "inputs": {"name": "Ada $(x)"}}]
    assert fake.polls == 3  # queued, in_progress, completed


def test_a_failed_run_is_exit_1(github: tuple[FakeGithub, str]) -> None:
    fake, url = github
    pipeline, settings, bundle = setup(url)
    fake.committed, fake.conclusion = bundle[FILE], "failure"
    assert (
        submit.dispatch(
            pipeline,
            settings,
            bundle,
            {},
            True,
            environ={"GITHUB_TOKEN": TOKEN},
            sleep=lambda _: None,
        )
        == 1
    )


def test_without_wait_it_returns_once_the_run_exists(
    github: tuple[FakeGithub, str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = github
    pipeline, settings, bundle = setup(url)
    fake.committed = bundle[FILE]
    assert (
        submit.dispatch(
            pipeline,
            settings,
            bundle,
            {},
            False,
            environ={"GITHUB_TOKEN": TOKEN},
            sleep=lambda _: None,
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == "1000"  # the run id alone, as on every target
    assert fake.polls == 0


@pytest.mark.parametrize("committed", [None, "name: older\n"])
def test_a_missing_or_stale_workflow_is_refused_before_dispatch(
    github: tuple[FakeGithub, str], committed: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = github
    pipeline, settings, bundle = setup(url)
    fake.committed = committed
    code = submit.dispatch(
        pipeline, settings, bundle, {}, True, environ={"GITHUB_TOKEN": TOKEN}, sleep=lambda _: None
    )
    assert code == 2
    assert not [s for s in fake.seen if s[0] == "POST"]
    assert "commit and push it" in capsys.readouterr().err


def test_a_wrong_token_is_one_line_exit_2(
    github: tuple[FakeGithub, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _fake, url = github
    pipeline, settings, bundle = setup(url)
    code = submit.dispatch(
        pipeline,
        settings,
        bundle,
        {},
        False,
        environ={"GITHUB_TOKEN": "wrong"},
        sleep=lambda _: None,
    )
    assert code == 2
    assert capsys.readouterr().err.strip().endswith("HTTP 401: Bad credentials")


def test_missing_repository_or_token_is_a_settings_error(github: tuple[FakeGithub, str]) -> None:
    _, url = github
    pipeline, settings, bundle = prepared("examples/hello.py", "github", [f"api_url={url}"])
    with pytest.raises(SettingsError, match="repository"):
        submit.dispatch(pipeline, settings, {}, {}, False, environ={"GITHUB_TOKEN": TOKEN})
    pipeline, settings, bundle = setup(url)
    with pytest.raises(SettingsError, match="GITHUB_TOKEN"):
        submit.dispatch(pipeline, settings, bundle, {}, False, environ={})


def test_pipec_run_dispatches_through_the_cli(github: tuple[FakeGithub, str]) -> None:
    import os
    import subprocess

    from tests.conftest import REPO

    fake, url = github
    _, _, bundle = setup(url)
    fake.committed = bundle[FILE]
    done = subprocess.run(
        [
            str(REPO / ".venv/bin/pipec"),
            "run",
            "examples/hello.py",
            "--target",
            "github",
            "--set",
            f"repository={REPO_NAME}",
            "--set",
            f"api_url={url}",
            "--param",
            "name=Bo",
        ],
        cwd=REPO,
        env={**os.environ, "GITHUB_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert [b for m, _, b in fake.seen if m == "POST"] == [
        {"ref": "main", "inputs": {"name": "Bo"}}
    ]
