"""A live copy of the Jobs (or Pods) of one run: list, then watch from the list's
resourceVersion, re-listing when the watch expires (410 Gone) or the connection drops.

One thread per kind keeps `items` (name -> object as the API spells it) and notifies a shared
condition on every change, so the executor's `wait` sleeps until something happens instead of
polling the API.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from pipec.backends.kubernetes.client import read, status_of

JSON = dict[str, Any]

WATCH_SECONDS = 20
"""How long one watch request lasts before it is renewed (server side)."""
RETRY_SECONDS = 1.0


class ObjectCache(threading.Thread):
    """Objects of one kind with a label selector, kept current by list + watch."""

    def __init__(
        self,
        kind: str,
        list_call: Callable[..., Any],
        namespace: str,
        selector: str,
        changed: threading.Condition,
    ) -> None:
        super().__init__(name=f"pipec-watch-{kind}", daemon=True)
        self.kind = kind
        self.list_call = list_call
        self.namespace = namespace
        self.selector = selector
        self.changed = changed
        self.items: dict[str, JSON] = {}
        self.deleted: set[str] = set()
        self.listed = threading.Event()
        self.error: str | None = None
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the thread to end (it does within one watch request)."""
        self._stop.set()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                version = self._list()
                self._watch(version)
            except Exception as exc:  # the API went away for a moment: list again
                with self.changed:
                    self.error = f"{type(exc).__name__}: {exc}"
                self._stop.wait(RETRY_SECONDS)

    def _list(self) -> str:
        listing = read(
            self.list_call(
                self.namespace,
                label_selector=self.selector,
                _preload_content=False,
                _request_timeout=30,
            )
        )
        with self.changed:
            fresh = {o["metadata"]["name"]: o for o in listing.get("items") or []}
            self.deleted |= set(self.items) - set(fresh)
            self.items = fresh
            self.error = None
            self.changed.notify_all()
        self.listed.set()
        return str((listing.get("metadata") or {}).get("resourceVersion", ""))

    def _watch(self, version: str) -> None:
        """Follow changes from `version` until the watch ends; return to re-list when the
        version expired."""
        while not self._stop.is_set():
            response = self.list_call(
                self.namespace,
                label_selector=self.selector,
                watch=True,
                resource_version=version,
                timeout_seconds=WATCH_SECONDS,
                allow_watch_bookmarks=True,
                _preload_content=False,
                _request_timeout=(10, WATCH_SECONDS + 10),
            )
            try:
                for line in _lines(response):
                    event = json.loads(line)
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        if obj.get("code") == 410:
                            return  # expired: list again
                        raise RuntimeError(obj.get("message", "watch error"))
                    version = str(obj.get("metadata", {}).get("resourceVersion", version))
                    if kind == "BOOKMARK":
                        continue
                    self._apply(str(kind), obj)
                    if self._stop.is_set():
                        return
            finally:
                response.release_conn()

    def _apply(self, kind: str, obj: JSON) -> None:
        name = obj["metadata"]["name"]
        with self.changed:
            if kind == "DELETED":
                self.items.pop(name, None)
                self.deleted.add(name)
            else:
                self.items[name] = obj
                self.deleted.discard(name)
            self.changed.notify_all()


def _lines(response: Any) -> Any:
    """The newline-separated JSON events of a streaming response."""
    pending = b""
    for chunk in response.stream(4096, decode_content=True):
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.strip():
                yield line
    if pending.strip():
        yield pending


def settle(caches: list[ObjectCache], seconds: float) -> None:
    """Wait until every cache has listed once (or `seconds` passed)."""
    end = time.monotonic() + seconds
    for cache in caches:
        cache.listed.wait(max(0.0, end - time.monotonic()))


def gone(exc: Exception) -> bool:
    """Whether an API error says the object does not exist."""
    return status_of(exc) == 404
