"""Misbehaving HTTP answers for the submitter tests (helpers, no tests here).

The stand-in API servers of `test_kubeflow_submit.py` and `test_airflow_submit.py` answer with
JSON; a reply from here replaces one JSON answer with a fault: a redirect, an HTML error page, a
body that is not JSON, a body of hundreds of MB, or an answer that trickles one byte at a time.
`other_host()` runs a second server on 127.0.0.2 (another host to a client that was given
127.0.0.1) that records whatever reaches it; `finishes()` turns a hang into a test failure.

Not modelled: TLS, proxies, keep-alive (every answer closes its connection, as HTTP/1.0).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

Reply = Callable[[BaseHTTPRequestHandler], None]
T = TypeVar("T")
MB = 1024 * 1024
HANG_SECONDS = 120.0
"""How long `finishes` waits: far above what any of these calls takes when it works."""

ERROR_PAGE = b"""<!DOCTYPE html>
<html>
<head><title>503 Service Temporarily Unavailable</title></head>
<body>
<center><h1>503 Service Temporarily Unavailable</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""


def redirect(location: str, status: int = 302) -> Reply:
    """Answer with a redirect to `location`."""

    def reply(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return reply


def body(status: int, data: bytes, content_type: str) -> Reply:
    """Answer with `data` as it is (an HTML page, plain text, ...)."""

    def reply(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return reply


@dataclass
class Stream:
    """What a streaming reply managed to send before the client went away."""

    sent: int = 0
    stop: threading.Event = field(default_factory=threading.Event)


def huge(size: int, stream: Stream, declare_length: bool) -> Reply:
    """Answer 200 with `size` bytes, made on the fly (the server holds 1 MB at a time), with or
    without a Content-Length (without one, the body ends when the connection closes)."""
    chunk = b" " * MB

    def reply(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if declare_length:
            handler.send_header("Content-Length", str(size))
        handler.end_headers()
        try:
            while stream.sent < size and not stream.stop.is_set():
                part = chunk[: size - stream.sent]
                handler.wfile.write(part)
                stream.sent += len(part)
        except OSError:
            pass  # the client stopped reading and closed: what the test wants to see

    return reply


def trickle(stream: Stream, every: float, in_headers: bool = False) -> Reply:
    """Answer one byte every `every` seconds until the client leaves: in the body (after a
    Content-Length of 1 MB), or already in the headers."""

    def reply(handler: BaseHTTPRequestHandler) -> None:
        try:
            if in_headers:
                handler.wfile.write(b"HTTP/1.0 200 OK\r\nX-Slow: ")
            else:
                handler.send_response(200)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", str(MB))
                handler.end_headers()
            handler.wfile.flush()
            while not stream.stop.wait(every):
                handler.wfile.write(b"a")
                handler.wfile.flush()
                stream.sent += 1
        except OSError:
            pass

    return reply


@dataclass
class Recorder:
    """The server on the other host: its base URL and every request that reached it."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def other_host() -> Iterator[Recorder]:
    """A server on 127.0.0.2 that records every request (with its headers) and answers 200 {}."""
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            recorder.requests.append(
                {"method": self.command, "path": self.path, "headers": dict(self.headers)}
            )
            body(200, b"{}", "application/json")(self)

        do_GET = do_POST = do_PATCH = _record

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler, "127.0.0.2") as url:
        recorder.url = url
        yield recorder


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `handler` on a free port of `host` in a thread; yields the base URL."""
    server = ThreadingHTTPServer((host, 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def finishes(call: Callable[[], T], seconds: float = HANG_SECONDS) -> T:
    """`call()`'s result; a test failure instead of a hang when it has not returned after
    `seconds` (a submitter that loops forever must fail its test, not stall the suite)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(("value", call()))
        except BaseException as exc:  # handed to the test's thread below
            outcome.append(("error", exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if not outcome:
        raise AssertionError(f"still running after {seconds:g}s: it hangs")
    kind, value = outcome[0]
    if kind == "error":
        raise value
    result: T = value
    return result
