"""The shared submit path on its own: `common.http.JsonApi` against a stand-in server on
127.0.0.1 (limits, deadline, redirects, error lines), and `common.submit.follow` with a fake
clock. The targets' submitters are tested against their APIs in test_kubeflow_submit.py and
test_airflow_submit.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from pipec.backends.common import http
from pipec.backends.common.http import ApiError, JsonApi, api_message, excerpt
from pipec.backends.common.submit import Deadline, ExitCode, follow
from pipec.backends.settings import SettingsError
from tests import http_faults


@pytest.fixture
def faults() -> Iterator[tuple[dict[str, http_faults.Reply], str]]:
    """A server answering each path with the reply registered for it (404 otherwise)."""
    replies: dict[str, http_faults.Reply] = {}

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            replies.get(self.path, http_faults.body(404, b"{}", "application/json"))(self)

        do_GET = do_POST = _reply

        def log_message(self, *args: Any) -> None:
            pass

    with http_faults.serving(Handler) as url:
        yield replies, url


@pytest.fixture
def stream() -> Iterator[http_faults.Stream]:
    made = http_faults.Stream()
    yield made
    made.stop.set()


def _error(api: JsonApi, path: str = "/x", method: str = "GET") -> str:
    with pytest.raises(ApiError) as caught:
        api.request(method, path, {"a": 1} if method == "POST" else None)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_json_answers_and_the_request_sent(
    faults: tuple[dict[str, http_faults.Reply], str],
) -> None:
    replies, url = faults
    replies["/ok"] = http_faults.body(200, b'{"run_id": "r"}', "application/json")
    replies["/empty"] = http_faults.body(200, b"", "application/json")
    api = JsonApi(url)
    assert api.request("POST", "/ok", {"b": 1}) == {"run_id": "r"}
    assert api.request("GET", "/empty") == {}


def test_a_declared_length_over_the_limit_is_refused_before_reading(
    faults: tuple[dict[str, http_faults.Reply], str], stream: http_faults.Stream
) -> None:
    replies, url = faults
    replies["/big"] = http_faults.huge(400 * http_faults.MB, stream, declare_length=True)
    message = _error(JsonApi(url), "/big")
    assert message == f"GET {url}/big: the answer is 419430400 bytes, over the 16777216 limit"
    assert stream.sent < 100 * http_faults.MB


def test_the_limit_is_counted_when_no_length_is_declared(
    faults: tuple[dict[str, http_faults.Reply], str], stream: http_faults.Stream
) -> None:
    replies, url = faults
    replies["/big"] = http_faults.huge(2000, stream, declare_length=False)
    replies["/fits"] = http_faults.huge(1000, http_faults.Stream(), declare_length=False)
    api = JsonApi(url, max_bytes=1000)
    assert _error(api, "/big").endswith("over the 1000 bytes limit; stopped reading")
    assert api.request("GET", "/fits") == {}  # exactly the limit is fine (1000 spaces)


def test_a_trickle_in_the_headers_hits_the_deadline(
    faults: tuple[dict[str, http_faults.Reply], str], stream: http_faults.Stream
) -> None:
    replies, url = faults
    replies["/slow"] = http_faults.trickle(stream, 0.05, in_headers=True)
    message = http_faults.finishes(lambda: _error(JsonApi(url, timeout=0.5), "/slow"))
    assert message == f"GET {url}/slow: no complete answer within 0.5s (the request's deadline)"


def test_the_default_deadline_is_read_when_sending(
    faults: tuple[dict[str, http_faults.Reply], str],
    stream: http_faults.Stream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replies, url = faults
    replies["/slow"] = http_faults.trickle(stream, 0.05)
    monkeypatch.setattr(http, "REQUEST_SECONDS", 0.5)
    assert "within 0.5s" in http_faults.finishes(lambda: _error(JsonApi(url), "/slow"))


def test_no_redirect_is_followed_and_the_line_says_where_it_went(
    faults: tuple[dict[str, http_faults.Reply], str],
) -> None:
    replies, url = faults
    replies["/same"] = http_faults.redirect("/elsewhere?token=abc", 301)
    replies["/bare"] = http_faults.body(302, b"", "text/plain")
    api = JsonApi(url, {"Authorization": "Bearer t0k"})
    message = _error(api, "/same", "POST")
    assert message == (
        f"POST {url}/same: HTTP 301 redirect to {url}/elsewhere; pipec follows no redirects: "
        "set the URL the API answers on"
    )
    assert _error(api, "/bare") == f"GET {url}/bare: HTTP 302 (a redirect without a Location)"


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (b'{"error": {"code": 403, "message": "Permission\\ndenied"}}', "Permission denied"),
        (b'{"code": 3, "message": "invalid spec", "details": []}', "invalid spec"),
        (b'{"detail": "DAG not found"}', "DAG not found"),
        (
            b'{"detail": [{"loc": ["body", "conf"], "msg": "not a dict"}, {"msg": "x"}]}',
            "body.conf: not a dict; x",
        ),
        (b'{"error": "plain error"}', "plain error"),
        (b"Bad gateway\r\n\r\nupstream\x00 closed", "Bad gateway upstream closed"),
        (b"<html><body><h1>Oops</h1>\n<p>down</p></body></html>", "Oops down"),
        (b"<html><title>A &amp; B</title><body>...</body></html>", "A & B"),
        (b"\xff\xfe not utf-8", "\ufffd\ufffd not utf-8"),
        (b"", "(empty body)"),
    ],
)
def test_error_bodies_give_one_line(body: bytes, line: str) -> None:
    assert api_message(body) == line


def test_an_excerpt_is_short() -> None:
    text = excerpt(b"x" * 10_000)
    assert len(text) == http.EXCERPT_CHARS and text.endswith("…")


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (b"[" * 100_000, "the answer is not JSON"),  # a RecursionError inside json
        (b"\xff\xfe\x00", "the answer is not JSON"),
        (b"[1, 2]", "the answer is JSON but not an object"),
    ],
)
def test_answers_that_are_no_json_object_are_errors(
    faults: tuple[dict[str, http_faults.Reply], str], answer: bytes, problem: str
) -> None:
    replies, url = faults
    replies["/odd"] = http_faults.body(200, answer, "application/json")
    assert problem in _error(JsonApi(url), "/odd")


def test_an_error_status_gives_the_status_and_the_message(
    faults: tuple[dict[str, http_faults.Reply], str],
) -> None:
    replies, url = faults
    replies["/gone"] = http_faults.body(404, b'{"detail": "no such DAG"}', "application/json")
    with pytest.raises(ApiError) as caught:
        JsonApi(url).request("GET", "/gone")
    assert str(caught.value) == f"GET {url}/gone: HTTP 404: no such DAG"
    assert caught.value.status == 404


def test_urls_and_tokens_are_checked_before_sending() -> None:
    assert http.check_url("https://kfp.example/", "host", "kubeflow") == "https://kfp.example"
    for bad in ("kfp.example", "ftp://kfp.example", "http://", "https://u:p@kfp.example"):
        with pytest.raises(SettingsError, match="target 'kubeflow': host must"):
            http.check_url(bad, "host", "kubeflow")
    with pytest.raises(SettingsError, match="host has an invalid port"):
        http.check_url("http://kfp.example:http", "host", "kubeflow")
    assert http.bearer_from_env({"T": " tok\n"}, "T") == {"Authorization": "Bearer tok"}
    assert http.bearer_from_env({}, "T") == {}
    with pytest.raises(ApiError, match="the environment variable T holds whitespace") as caught:
        http.bearer_from_env({"T": "a\nb"}, "T")
    assert "a\nb" not in str(caught.value)


class _Clock:
    """Time that passes only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_follow_reports_each_new_state_and_stops_at_a_terminal_one() -> None:
    clock, said = _Clock(), []
    answers = iter([{"state": "PENDING"}, {"state": "PENDING"}, {"state": "FAILED", "e": 1}])
    code, last = follow(
        lambda: next(answers),
        {"SUCCEEDED": ExitCode.OK, "FAILED": ExitCode.RUN_FAILED},
        label="run r",
        poll_interval=5,
        deadline=Deadline(100, clock),
        say=said.append,
        sleep=clock.sleep,
    )
    assert (code, last) == (ExitCode.RUN_FAILED, {"state": "FAILED", "e": 1})
    assert said == ["run r: PENDING", "run r: FAILED"]
    assert clock.slept == [5, 5]


def test_follow_gives_up_at_the_deadline_without_oversleeping() -> None:
    clock, said = _Clock(), []
    code, _ = follow(
        lambda: {"state": "RUNNING"},
        {"SUCCEEDED": ExitCode.OK},
        label="run r",
        poll_interval=4,
        deadline=Deadline(10, clock),
        say=said.append,
        sleep=clock.sleep,
    )
    assert code == ExitCode.RUN_FAILED
    assert clock.slept == [4, 4, 2]  # the last sleep ends at the deadline, then one more look
    assert said[-1] == (
        "error: run r is still RUNNING after run_timeout (10s); it goes on without pipec watching"
    )


@pytest.mark.parametrize("answer", [{}, {"state": ""}, {"state": None}, {"state": 3}])
def test_follow_fails_on_an_answer_without_a_state(answer: dict[str, Any]) -> None:
    said: list[str] = []
    code, _ = follow(
        lambda: answer,
        {"SUCCEEDED": ExitCode.OK},
        label="run r",
        poll_interval=1,
        deadline=Deadline(10),
        say=said.append,
    )
    assert code == ExitCode.RUN_FAILED
    assert said == [
        "error: run r: the API's answer has no state, so the run cannot be followed "
        f"(answer: {json.dumps(answer)})"
    ]
