"""JSON over HTTP for the submitters: one small client that every target handing files to an
engine's REST API uses (KFP, Vertex AI, Airflow; the next ones too).

Standard library only (the base install must not need `requests`). What it guarantees:

* Errors are one line: method, URL, HTTP status and the API's own message when the body is JSON,
  else a short single-line excerpt (an HTML error page gives its title, never its markup).
  Bodies that are not JSON, not UTF-8 or nested too deeply are errors, never tracebacks.
* Bounded: a response body over `MAX_RESPONSE_BYTES` is refused, from its Content-Length when it
  declares one and by counting otherwise, so memory stays bounded whatever the server sends.
* An overall deadline per request (`REQUEST_SECONDS`, connect to last byte). Socket timeouts
  are per read, so a server trickling a byte every few seconds would never trip them: a
  watchdog shuts the request's socket down when the deadline passes.
* Credentials stay with the configured origin. Redirects are never followed: urllib copies the
  Authorization header to a redirect target on any host, and replays a redirected POST or PATCH
  as a body-less GET (a "create the run" that silently turns into a read). The APIs pipec talks
  to do not redirect their JSON endpoints, so a redirect means the configured URL is not the
  API's (http instead of https, a login proxy): the error names the target so the user can set
  the right URL. Headers are never logged.
"""

from __future__ import annotations

import contextlib
import html
import http.client
import json
import re
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

from pipec.backends.settings import SettingsError

JSON = dict[str, Any]

MAX_RESPONSE_BYTES = 16 * 1024 * 1024
"""The largest response body read (KFP run answers carry the pipeline spec: a few MB at most)."""
MAX_ERROR_BYTES = 64 * 1024
"""How much of an error body is read to find the API's message."""
REQUEST_SECONDS = 60.0
"""The overall deadline of one request."""
EXCERPT_CHARS = 200
CHUNK_BYTES = 64 * 1024


class ApiError(Exception):
    """A request failed; the message is one line. `status` is the HTTP status, if one came."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def check_url(url: str, setting: str, target: str) -> str:
    """`url` without a trailing slash, or a SettingsError when it is not an http(s) URL with a
    host (urllib would otherwise fail with "unknown url type" deep inside a request)."""
    parts = urllib.parse.urlsplit(url)
    try:
        parts.port  # noqa: B018 (parsing the port is the check)
    except ValueError:
        raise SettingsError(f"target {target!r}: {setting} has an invalid port: {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(
            f"target {target!r}: {setting} must be an http:// or https:// URL with a host, "
            f"got {url!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise SettingsError(
            f"target {target!r}: {setting} must not hold credentials (user:password@); "
            "give them through the environment"
        )
    return url.rstrip("/")


def bearer(token: str, source: str) -> dict[str, str]:
    """The Authorization header for a bearer token (`source` names where it came from, for the
    error; the token itself is never shown)."""
    token = token.strip()
    if not token:
        return {}
    if any(not ch.isprintable() or ch.isspace() for ch in token):
        raise ApiError(f"{source} holds whitespace or control characters: not a bearer token")
    return {"Authorization": f"Bearer {token}"}


def bearer_from_env(environ: Mapping[str, str], name: str) -> dict[str, str]:
    """The Authorization header from the environment variable `name` ({} when unset or empty)."""
    return bearer(environ.get(name, ""), f"the environment variable {name}")


def exchange_password(api: JsonApi, path: str, username: str, password: str) -> dict[str, str]:
    """The Authorization header for a token obtained by posting a username and password
    (Airflow 3's `/auth/token`, which answers `{"access_token": ...}`)."""
    answer = api.request("POST", path, {"username": username, "password": password})
    token = answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise ApiError(f"POST {api.display(path)} answered without an access_token")
    return bearer(token, f"the access_token from {api.display(path)}")


@dataclass(frozen=True)
class JsonApi:
    """A JSON API under `base_url`; `headers` (credentials) go only to that origin because
    every request goes to `base_url + path` and redirects are refused."""

    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float | None = None
    """The overall deadline of one request (None: REQUEST_SECONDS, read when sending)."""
    max_bytes: int | None = None
    """The largest answer read (None: MAX_RESPONSE_BYTES, read when sending)."""

    def with_headers(self, headers: Mapping[str, str]) -> JsonApi:
        """The same API with more headers (e.g. credentials obtained through it)."""
        return replace(self, headers={**self.headers, **headers})

    def display(self, path: str) -> str:
        """The URL of `path` as errors show it."""
        return self.base_url + path

    def request(self, method: str, path: str, body: Any = None) -> JSON:
        """Send one request; the answer's JSON object ({} for an empty body). Every failure is an
        ApiError with one line."""
        url = self.base_url + path
        where = f"{method} {url}"
        data = None if body is None else json.dumps(body, sort_keys=True).encode("utf-8")
        headers = {"Accept": "application/json", **self.headers}
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            req = urllib.request.Request(url, data=data, headers=headers, method=method)
        except ValueError as exc:
            raise ApiError(f"{where}: not a usable URL ({exc})") from None
        seconds = REQUEST_SECONDS if self.timeout is None else self.timeout
        limit = MAX_RESPONSE_BYTES if self.max_bytes is None else self.max_bytes
        with _Watchdog(seconds) as watchdog:
            try:
                raw = self._exchange(req, watchdog, where, seconds, limit)
            except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
                if watchdog.expired:
                    raise _late(where, seconds) from None
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                text = one_line(str(reason)) or type(reason).__name__
                if isinstance(exc, ValueError) and "header" in text.lower():
                    text = "a header value http.client refuses (not shown: it may be a credential)"
                raise ApiError(f"{where} failed: {text}") from None
            if watchdog.expired:  # a close-delimited body cut by the watchdog looks complete
                raise _late(where, seconds)
        return _parse(raw, where)

    @staticmethod
    def _exchange(
        req: urllib.request.Request, watchdog: _Watchdog, where: str, seconds: float, limit: int
    ) -> bytes:
        opener = urllib.request.build_opener(
            _WatchedHTTPHandler(watchdog), _WatchedHTTPSHandler(watchdog), _NoRedirects()
        )
        try:
            with opener.open(req, timeout=seconds) as response:
                return _read_capped(response, limit, where)
        except urllib.error.HTTPError as exc:
            try:
                if 300 <= exc.code < 400:
                    raise ApiError(_redirected(where, req.full_url, exc), exc.code) from None
                detail = _read_capped(exc, MAX_ERROR_BYTES, where, truncate=True)
            finally:
                exc.close()
            if watchdog.expired:
                raise _late(where, seconds) from None
            raise ApiError(f"{where}: HTTP {exc.code}: {api_message(detail)}", exc.code) from None


def _late(where: str, seconds: float) -> ApiError:
    return ApiError(f"{where}: no complete answer within {seconds:g}s (the request's deadline)")


def api_message(raw: bytes) -> str:
    """The human part of an error body, on one line: `message` (KFP, Google APIs, also under
    `error`), `detail` (Airflow/FastAPI, a string or a list of problems), else an excerpt."""
    data = _json_or_none(raw)
    if isinstance(data, dict):
        error = data.get("error")
        for holder in (error, data) if isinstance(error, dict) else (data,):
            message = holder.get("message")
            if isinstance(message, str) and message.strip():
                return one_line(message)
        detail = data.get("detail")
        if isinstance(detail, str) and detail.strip():
            return one_line(detail)
        if isinstance(detail, list) and detail:
            problems = [_problem(item) for item in detail]
            return one_line("; ".join(problems))
        if isinstance(error, str) and error.strip():
            return one_line(error)
    return excerpt(raw) or "(empty body)"


def excerpt(raw: bytes) -> str:
    """A short single-line excerpt of a body: an HTML page's title (or its text without tags),
    whitespace collapsed, control characters replaced, cut to EXCERPT_CHARS."""
    text = raw.decode("utf-8", "replace")
    if text.lstrip().startswith("<"):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        text = title.group(1) if title else re.sub(r"<[^>]*>", " ", text)
        text = html.unescape(text)
    return one_line(text)


def one_line(text: str) -> str:
    """`text` on one line: whitespace collapsed, control characters replaced, cut short."""
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1] + "…"


def _problem(item: Any) -> str:
    if isinstance(item, dict) and isinstance(item.get("msg"), str):
        loc = item.get("loc")
        place = ".".join(str(p) for p in loc) if isinstance(loc, list) else ""
        return f"{place}: {item['msg']}" if place else str(item["msg"])
    return str(item)


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None


def _parse(raw: bytes, where: str) -> JSON:
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(f"{where}: the answer is not JSON: {excerpt(raw)!r}") from None
    if not isinstance(data, dict):
        raise ApiError(f"{where}: the answer is JSON but not an object: {excerpt(raw)!r}")
    return data


def _read_capped(
    response: http.client.HTTPResponse | urllib.error.HTTPError,
    limit: int,
    where: str,
    truncate: bool = False,
) -> bytes:
    """At most `limit` bytes of the body; more is an error (or, for error bodies that are only
    mined for a message, cut off)."""
    declared = response.headers.get("Content-Length")
    if not truncate and declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(f"{where}: the answer is {int(declared)} bytes, over the {limit} limit")
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = response.read(min(CHUNK_BYTES, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    if truncate:
        return b"".join(chunks)[:limit]
    raise ApiError(f"{where}: the answer is over the {limit} bytes limit; stopped reading")


def _redirected(where: str, url: str, exc: urllib.error.HTTPError) -> str:
    location = exc.headers.get("Location") or exc.headers.get("URI")
    if not location:
        return f"{where}: HTTP {exc.code} (a redirect without a Location)"
    parts = urllib.parse.urlsplit(urllib.parse.urljoin(url, location))
    # Shown without its query: a login redirect's query is long and none of the user's business.
    other = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    same = _origin(other) == _origin(url)
    note = "" if same else " (another host: nothing, and no credentials, was sent there)"
    return (
        f"{where}: HTTP {exc.code} redirect to {one_line(other)}{note}; pipec follows no "
        "redirects: set the URL the API answers on"
    )


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    try:
        port = parts.port or default
    except ValueError:
        port = None
    return parts.scheme, (parts.hostname or "").lower(), port


class _Watchdog:
    """Shuts down the sockets of one request when its deadline passes (which makes a blocked
    read return at once), so the deadline holds from connect to the last byte."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def watch(self, sock: socket.socket) -> None:
        """Watch a freshly connected socket. A duplicate descriptor is kept: TLS wrapping
        detaches the original object, but shutting down any descriptor of the connection
        stops it."""
        duplicate = sock.dup()
        with self._lock:
            self._sockets.append(duplicate)
            if self.expired:
                _shutdown(duplicate)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the other side
        sock.shutdown(socket.SHUT_RDWR)


def _watched(watchdog: _Watchdog, sock: socket.socket) -> socket.socket:
    watchdog.watch(sock)
    return sock


class _WatchedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, *, watchdog: _Watchdog, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        create = self._create_connection  # type: ignore[has-type]
        self._create_connection = lambda *a, **k: _watched(watchdog, create(*a, **k))


class _WatchedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, *, watchdog: _Watchdog, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        create = self._create_connection  # type: ignore[has-type]
        self._create_connection = lambda *a, **k: _watched(watchdog, create(*a, **k))


class _WatchedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, watchdog: _Watchdog) -> None:
        super().__init__()
        self._watchdog = watchdog

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        watchdog = self._watchdog

        def connection(host: str, **kwargs: Any) -> http.client.HTTPConnection:
            return _WatchedHTTPConnection(host, watchdog=watchdog, **kwargs)

        return self.do_open(connection, req)


class _WatchedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, watchdog: _Watchdog) -> None:
        super().__init__()
        self._watchdog = watchdog

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        watchdog = self._watchdog

        def connection(host: str, **kwargs: Any) -> http.client.HTTPConnection:
            return _WatchedHTTPSConnection(host, watchdog=watchdog, **kwargs)

        return self.do_open(connection, req)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Declines every redirect, so urllib raises the 3xx as an HTTPError (nothing is sent to the
    redirect target, and the 3xx body is not read)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> urllib.request.Request | None:
        return None
