"""A stand-in Kubernetes API server for the kubernetes target's tests (no cluster can be had
here). It is NOT Kubernetes: it implements only what pipec calls, strictly.

    python server.py --state DIR --cert C --key K [--pvc NAME=DIR] [--image NAME=LOCAL]

prints one JSON line (port, admin token) and serves HTTPS on 127.0.0.1.

Implemented (namespaced, `/api/v1` and `/apis/{batch,rbac.authorization.k8s.io}/v1`): create,
get, list (equality label selectors), watch (resourceVersion, timeoutSeconds, 410 for a
version older than the kept window; no bookmarks), replace and delete of Jobs, Pods, Secrets,
ConfigMaps, ServiceAccounts, Roles, RoleBindings and CronJobs (stored only: no CronJob
controller); `pods/log`; `pods/eviction`. Every object received is checked as a real server
would (`checks`: official schemas, API validation, PodSecurity restricted). Bearer tokens: the
admin token may do anything; a pod's service account token is authorized by the stored Roles
and RoleBindings (RBAC, namespaced rules only).

The objects and RBAC are `objects`, the Job controller and the pods' lifecycle `controllers`,
running containers `kubelet`; this module is the HTTP side.

Not modelled: see `kubelet` (scheduling, limits, images), and: no admission webhooks, quotas,
LimitRanges, field selectors, set-based label selectors, patch, server-side apply, status
subresources, finalizers, events, other namespaces' objects, cluster-scoped RBAC, Job
parallelism/completions/indexes/suspend, pod failure policy on exit codes, CronJob schedules.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from controllers import Cluster
from objects import JSON, KINDS, ApiError, selector_matches


class Handler(BaseHTTPRequestHandler):
    cluster: Cluster
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: JSON | str) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(code)
        self.send_header(
            "Content-Type", "text/plain" if isinstance(body, str) else "application/json"
        )
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self) -> tuple[str, str, str, str, dict[str, list[str]]]:
        url = urlparse(self.path)
        parts = [p for p in url.path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            rest = parts[2:]
        elif (
            len(parts) >= 3
            and parts[0] == "apis"
            and parts[1] in ("batch", "rbac.authorization.k8s.io")
            and parts[2] == "v1"
        ):
            rest = parts[3:]
        else:
            raise ApiError(404, "NotFound", f"the stand-in serves no {url.path}")
        if len(rest) < 3 or rest[0] != "namespaces" or rest[2] not in KINDS:
            raise ApiError(404, "NotFound", f"the stand-in serves no {url.path}")
        group = KINDS[rest[2]][0]
        want = "v1" if parts[0] == "api" else f"{parts[1]}/v1"
        if group != want:
            raise ApiError(404, "NotFound", f"{rest[2]} is not in {want}")
        name = rest[3] if len(rest) > 3 else ""
        sub = rest[4] if len(rest) > 4 else ""
        return rest[1], rest[2], name, sub, parse_qs(url.query)

    def _token(self) -> str | None:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    def _body(self) -> JSON:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            raise ApiError(400, "BadRequest", "the body is not JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body is not an object")
        return body

    def _handle(self, method: str) -> None:
        c = self.cluster
        try:
            ns, plural, name, sub, query = self._route()
            watch = query.get("watch", ["false"])[0] in ("true", "1")
            verb = {"POST": "create", "PUT": "update", "DELETE": "delete"}.get(method) or (
                "get" if name else ("watch" if watch else "list")
            )
            c.authorize(self._token(), verb, plural, sub, ns)
            if watch:
                return self._watch(ns, plural, query)
            with c.lock:
                if method == "GET" and sub == "log":
                    return self._log(ns, name)
                if method == "POST" and sub == "eviction":
                    c.evict(ns, name)
                    return self._send(201, {"kind": "Status", "status": "Success"})
                if sub:
                    raise ApiError(404, "NotFound", f"the stand-in serves no {plural}/{sub}")
                if method == "POST" and not name:
                    return self._send(201, c.create(plural, ns, self._body()))
                if method == "PUT" and name:
                    return self._send(200, c.replace(plural, ns, name, self._body()))
                if method == "DELETE" and name:
                    options = self._body() if self.headers.get("Content-Length") else {}
                    policy = query.get("propagationPolicy", [options.get("propagationPolicy")])[0]
                    return self._send(200, c.delete(plural, ns, name, policy))
                if method == "GET" and name:
                    obj = c.get_object(plural, ns, name)
                    if obj is None:
                        raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
                    return self._send(200, obj)
                if method == "GET":
                    selector = query.get("labelSelector", [""])[0]
                    return self._send(
                        200,
                        {
                            "kind": KINDS[plural][1] + "List",
                            "apiVersion": KINDS[plural][0],
                            "metadata": {"resourceVersion": str(c.version)},
                            "items": c.listing(plural, ns, selector),
                        },
                    )
            raise ApiError(405, "MethodNotAllowed", f"{method} {self.path}")
        except ApiError as exc:
            self._send(exc.code, exc.status())

    def _log(self, ns: str, name: str) -> None:
        c = self.cluster
        pod = c.get_object("pods", ns, name)
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found')
        uid = pod["metadata"]["uid"]
        cid = c.containers.get(uid)
        if cid is None and uid not in c.logs:
            raise ApiError(400, "BadRequest", f'container in pod "{name}" is waiting to start')
        self._send(200, c.kubelet.logs(cid) if cid else c.logs[uid])

    def _watch(self, ns: str, plural: str, query: dict[str, list[str]]) -> None:
        c = self.cluster
        selector = query.get("labelSelector", [""])[0]
        since = int(query.get("resourceVersion", ["0"])[0] or 0)
        end = time.monotonic() + min(float(query.get("timeoutSeconds", ["60"])[0]), 300)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(event: JSON) -> None:
            data = json.dumps(event).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        try:
            with c.lock:
                if since and c.events and since < c.events[0][0] - 1:
                    chunk(
                        {
                            "type": "ERROR",
                            "object": {
                                "kind": "Status",
                                "code": 410,
                                "reason": "Expired",
                                "message": "too old resource version",
                            },
                        }
                    )
                    since = -1
            while since >= 0 and time.monotonic() < end:
                with c.lock:
                    fresh = [e for e in c.events if e[0] > since]
                    if not fresh:
                        c.lock.wait(min(1.0, max(0.0, end - time.monotonic())))
                        continue
                since = fresh[-1][0]
                for _, p, n, kind, obj in fresh:
                    if (
                        p == plural
                        and n == ns
                        and selector_matches(selector, obj["metadata"].get("labels") or {})
                    ):
                        chunk({"type": kind, "object": obj})
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--pvc", action="append", default=[])
    parser.add_argument("--image", action="append", default=[])
    parser.add_argument("--backoff", type=float, default=10.0)
    args = parser.parse_args()
    cluster = Cluster(args)
    Handler.cluster = cluster
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    cluster.port = server.server_address[1]

    def controllers() -> None:
        while True:
            with cluster.lock:
                try:
                    cluster.reconcile()
                except Exception as exc:  # keep serving; the test sees the stuck Job
                    print(f"stand-in controller error: {exc!r}", file=sys.stderr, flush=True)
            time.sleep(0.2)

    threading.Thread(target=controllers, daemon=True).start()
    print(json.dumps({"port": cluster.port, "token": cluster.admin_token}), flush=True)
    try:
        server.serve_forever()
    finally:
        cluster.kubelet.cleanup()


if __name__ == "__main__":
    main()
