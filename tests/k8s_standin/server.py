"""A stand-in Kubernetes API server for the kubernetes target's tests (no cluster can be had
here). It is NOT Kubernetes: it implements only what pipec calls, strictly.

    python server.py --state DIR --cert C --key K [--pvc NAME=DIR] [--image NAME=LOCAL]

prints one JSON line (port, admin token) and serves HTTPS on 127.0.0.1.

Implemented (namespaced, `/api/v1` and `/apis/{batch,rbac.authorization.k8s.io}/v1`): create,
get, list (equality label selectors), watch (resourceVersion, timeoutSeconds, bookmarks, 410
for a version older than the kept window), replace and delete of Jobs, Pods, Secrets,
ConfigMaps, ServiceAccounts, Roles, RoleBindings and CronJobs (stored only: no CronJob
controller); `pods/log`; `pods/eviction`. Every object received is checked as a real server
would (`checks`: official schemas, API validation, PodSecurity restricted). Bearer tokens: the
admin token may do anything; a pod's service account token is authorized by the stored Roles
and RoleBindings (RBAC, namespaced rules only).

The Job controller (`_reconcile`): one pod at a time (parallelism 1, completions 1), a new pod
after a failure while failures <= backoffLimit (after a backoff of `--backoff` seconds doubling
per failure, 10 s like the real controller unless a test says otherwise), podFailurePolicy
`Ignore` on a pod condition (a disrupted pod does not count), Job `activeDeadlineSeconds`,
`ttlSecondsAfterFinished`, conditions `Complete`/`Failed` (+ `SuccessCriteriaMet`/
`FailureTarget` first, as since 1.31) with their reasons, pod labels `batch.kubernetes.io/
job-name` and `controller-uid` (and the legacy ones). Deleting a Job with propagationPolicy
Background or Foreground deletes its pods; without one they are orphaned, as the batch API does.

Not modelled: see `kubelet` (scheduling, limits, images), and: no admission webhooks, quotas,
LimitRanges, field selectors, set-based label selectors, patch, server-side apply, status
subresources, finalizers, events, other namespaces' objects, cluster-scoped RBAC, Job
parallelism/completions/indexes/suspend, pod failure policy on exit codes, CronJob schedules.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import secrets
import ssl
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from checks import problems
from kubelet import CannotStart, Kubelet, NotYet

JSON = dict[str, Any]
KINDS = {  # plural -> (group/version, kind)
    "pods": ("v1", "Pod"),
    "secrets": ("v1", "Secret"),
    "configmaps": ("v1", "ConfigMap"),
    "serviceaccounts": ("v1", "ServiceAccount"),
    "jobs": ("batch/v1", "Job"),
    "cronjobs": ("batch/v1", "CronJob"),
    "roles": ("rbac.authorization.k8s.io/v1", "Role"),
    "rolebindings": ("rbac.authorization.k8s.io/v1", "RoleBinding"),
}
KEPT_EVENTS = 5000


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> JSON:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class Cluster:
    """The objects, their watch events, the controllers."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.lock = threading.Condition()
        self.objects: dict[tuple[str, str, str], JSON] = {}
        self.events: list[tuple[int, str, str, str, JSON]] = []
        self.version = 1
        self.admin_token = secrets.token_hex(16)
        self.tokens: dict[str, tuple[str, str]] = {}
        self.ca_file = args.cert
        self.port = 0
        self.backoff = args.backoff
        state = Path(args.state)
        images = dict(i.split("=", 1) for i in args.image)
        pvcs = {n: Path(p) for n, p in (v.split("=", 1) for v in args.pvc)}
        self.kubelet = Kubelet(self, state, images, pvcs)
        self.containers: dict[str, str] = {}  # pod uid -> container id
        self.logs: dict[str, str] = {}  # pod uid -> log of its ended container
        self.next_pod_at: dict[str, float] = {}
        self.clock: dict[str, float] = {}  # "<uid>/start" and "<uid>/end" of pods and Jobs

    # ------------------------------------------------------------------ storage

    def get_object(self, plural: str, ns: str, name: str) -> JSON | None:
        return self.objects.get((plural, ns, name))

    def token_for(self, ns: str, account: str) -> str:
        token = f"sa-{secrets.token_hex(12)}"
        self.tokens[token] = (ns, account)
        return token

    def _emit(self, plural: str, ns: str, kind: str, obj: JSON) -> None:
        self.events.append((self.version, plural, ns, kind, copy.deepcopy(obj)))
        del self.events[:-KEPT_EVENTS]
        self.lock.notify_all()

    def _bump(self, obj: JSON) -> None:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)

    def store(self, plural: str, ns: str, obj: JSON, kind: str) -> JSON:
        self._bump(obj)
        self.objects[(plural, ns, obj["metadata"]["name"])] = obj
        self._emit(plural, ns, kind, obj)
        return obj

    def create(self, plural: str, ns: str, obj: JSON) -> JSON:
        version, kind = KINDS[plural]
        if obj.get("apiVersion") != version or obj.get("kind") != kind:
            raise ApiError(400, "BadRequest", f"expected {version} {kind} for {plural}")
        meta = obj.setdefault("metadata", {})
        if meta.get("namespace", ns) != ns:
            raise ApiError(400, "BadRequest", "the namespace of the object does not match")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        found = problems(obj, plural)
        # Validation (422) comes before validating admission such as PodSecurity (403).
        invalid = [p for p in found if "PodSecurity" not in p]
        if found:
            code, reason = (422, "Invalid") if invalid else (403, "Forbidden")
            raise ApiError(
                code,
                reason,
                f'{kind} "{meta.get("name")}" is invalid: ' + "; ".join(invalid or found),
            )
        if (plural, ns, meta["name"]) in self.objects:
            raise ApiError(409, "AlreadyExists", f'{plural} "{meta["name"]}" already exists')
        meta.update(namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        if plural == "jobs":
            self._default_job(obj)
        if plural == "pods":
            obj["status"] = {"phase": "Pending"}
        if plural == "secrets":
            for key, value in (obj.pop("stringData", None) or {}).items():
                obj.setdefault("data", {})[key] = base64.b64encode(value.encode()).decode()
        return self.store(plural, ns, obj, "ADDED")

    def _default_job(self, job: JSON) -> None:
        uid, name = job["metadata"]["uid"], job["metadata"]["name"]
        spec = job["spec"]
        labels = {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        template_meta = spec["template"].setdefault("metadata", {})
        template_meta["labels"] = {**(template_meta.get("labels") or {}), **labels}
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completions", 1)
        spec.setdefault("parallelism", 1)
        job["status"] = {}

    def replace(self, plural: str, ns: str, name: str, obj: JSON) -> JSON:
        old = self.objects.get((plural, ns, name))
        if old is None:
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
        if plural == "configmaps" and old.get("immutable"):
            raise ApiError(422, "Invalid", f'ConfigMap "{name}" is immutable')
        if plural in ("jobs", "pods"):
            raise ApiError(422, "Invalid", f"{plural}: the stand-in does not update specs")
        found = problems(obj, plural)
        if found:
            raise ApiError(422, "Invalid", "; ".join(found))
        obj["metadata"].update(
            {k: old["metadata"][k] for k in ("uid", "creationTimestamp")}, namespace=ns
        )
        return self.store(plural, ns, obj, "MODIFIED")

    def delete(self, plural: str, ns: str, name: str, propagation: str | None) -> JSON:
        obj = self.objects.pop((plural, ns, name), None)
        if obj is None:
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
        self._bump(obj)
        self._emit(plural, ns, "DELETED", obj)
        if plural == "pods":
            self._stop_pod(obj)
        if plural == "jobs" and propagation in ("Background", "Foreground"):
            for pod in self._pods_of(obj):
                self.delete("pods", ns, pod["metadata"]["name"], None)
        return obj

    def listing(self, plural: str, ns: str, selector: str) -> list[JSON]:
        return [
            o
            for (p, n, _), o in sorted(self.objects.items())
            if p == plural
            and n == ns
            and selector_matches(selector, o["metadata"].get("labels") or {})
        ]

    # -------------------------------------------------------------------- RBAC

    def authorize(self, token: str | None, verb: str, plural: str, sub: str, ns: str) -> None:
        if token == self.admin_token:
            return
        if token not in self.tokens:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        sa_ns, account = self.tokens[token]
        group = KINDS[plural][0].rpartition("/")[0]
        resource = f"{plural}/{sub}" if sub else plural
        for binding in self.listing("rolebindings", ns, ""):
            if not any(
                s.get("kind") == "ServiceAccount"
                and s.get("name") == account
                and s.get("namespace", ns) == sa_ns
                for s in binding.get("subjects") or []
            ):
                continue
            role = self.get_object("roles", ns, binding["roleRef"]["name"])
            for rule in (role or {}).get("rules") or []:
                if (
                    (group in rule.get("apiGroups", []) or "*" in rule.get("apiGroups", []))
                    and (resource in rule.get("resources", []) or "*" in rule.get("resources", []))
                    and (verb in rule.get("verbs", []) or "*" in rule.get("verbs", []))
                ):
                    return
        raise ApiError(
            403,
            "Forbidden",
            f'User "system:serviceaccount:{sa_ns}:{account}" '
            f'cannot {verb} resource "{resource}" in namespace "{ns}"',
        )

    # ---------------------------------------------------------------- controllers

    def _pods_of(self, job: JSON) -> list[JSON]:
        uid = job["metadata"]["uid"]
        return [
            p
            for p in self.listing("pods", job["metadata"]["namespace"], "")
            if (p["metadata"].get("labels") or {}).get("controller-uid") == uid
        ]

    def _stop_pod(self, pod: JSON) -> None:
        cid = self.containers.pop(pod["metadata"]["uid"], None)
        if cid:
            self.kubelet.kill(cid)
            self.logs[pod["metadata"]["uid"]] = self.kubelet.logs(cid)
            self.kubelet.remove(cid)

    def _set_status(self, plural: str, obj: JSON, status: JSON) -> None:
        if status != obj.get("status"):
            obj["status"] = status
            self.store(plural, obj["metadata"]["namespace"], obj, "MODIFIED")

    def _pod_failed(
        self, pod: JSON, reason: str, message: str, code: int = 137, condition: str | None = None
    ) -> None:
        self._stop_pod(pod)
        status = copy.deepcopy(pod["status"])
        status.update(phase="Failed", reason=reason, message=message)
        status["containerStatuses"] = [
            {
                "name": pod["spec"]["containers"][0]["name"],
                "ready": False,
                "restartCount": 0,
                "image": pod["spec"]["containers"][0]["image"],
                "imageID": "",
                "state": {"terminated": {"exitCode": code, "reason": "Error", "finishedAt": now()}},
            }
        ]
        if condition:
            status["conditions"] = [
                {"type": condition, "status": "True", "reason": reason, "lastTransitionTime": now()}
            ]
        self._set_status("pods", pod, status)

    def reconcile(self) -> None:
        for (plural, _, _), obj in list(self.objects.items()):
            if (
                plural == "pods"
                and self.objects.get(
                    ("pods", obj["metadata"]["namespace"], obj["metadata"]["name"])
                )
                is obj
            ):
                self._kubelet_sync(obj)
        for (plural, _, _), obj in list(self.objects.items()):
            if plural == "jobs":
                self._job_sync(obj)

    def _kubelet_sync(self, pod: JSON) -> None:
        status = pod["status"]
        uid = pod["metadata"]["uid"]
        container = pod["spec"]["containers"][0]
        if status["phase"] == "Pending":
            try:
                cid = self.kubelet.start(pod)
            except NotYet:
                return
            except CannotStart as exc:
                waiting = {"waiting": {"reason": exc.reason, "message": exc.message}}
                self._set_status(
                    "pods",
                    pod,
                    {
                        **status,
                        "containerStatuses": [
                            {
                                "name": container["name"],
                                "ready": False,
                                "restartCount": 0,
                                "image": container["image"],
                                "imageID": "",
                                "state": waiting,
                            }
                        ],
                    },
                )
                return
            self.containers[uid] = cid
            self.clock[uid + "/start"] = time.time()
            self._set_status(
                "pods",
                pod,
                {
                    "phase": "Running",
                    "startTime": now(),
                    "containerStatuses": [
                        {
                            "name": container["name"],
                            "ready": True,
                            "restartCount": 0,
                            "started": True,
                            "image": container["image"],
                            "imageID": "",
                            "state": {"running": {"startedAt": now()}},
                        }
                    ],
                },
            )
            return
        if status["phase"] != "Running":
            return
        deadline = pod["spec"].get("activeDeadlineSeconds")
        if deadline is not None and time.time() - self.clock[uid + "/start"] > deadline:
            self._pod_failed(
                pod,
                "DeadlineExceeded",
                "Pod was active on the node longer than the specified deadline",
            )
            return
        cid = self.containers.get(uid)
        ended = self.kubelet.state_of(cid) if cid else {"exitCode": 137, "reason": "Error"}
        if ended is None:
            return
        self._stop_pod(pod)
        code = ended["exitCode"]
        self._set_status(
            "pods",
            pod,
            {
                **{k: v for k, v in status.items()},
                "phase": "Succeeded" if code == 0 else "Failed",
                "containerStatuses": [
                    {
                        "name": container["name"],
                        "ready": False,
                        "restartCount": 0,
                        "started": False,
                        "image": container["image"],
                        "imageID": "",
                        "state": {"terminated": {**ended, "finishedAt": now()}},
                    }
                ],
            },
        )

    def _job_sync(self, job: JSON) -> None:
        spec, status = job["spec"], copy.deepcopy(job.get("status") or {})
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        uid = job["metadata"]["uid"]
        conditions = status.get("conditions") or []
        if any(c["type"] in ("Complete", "Failed") for c in conditions):
            ttl = spec.get("ttlSecondsAfterFinished")
            if ttl is not None and time.time() - self.clock[uid + "/end"] >= ttl:
                self.delete("jobs", ns, name, "Background")
            return
        status.setdefault("startTime", now())
        started = self.clock.setdefault(uid + "/start", time.time())
        pods = self._pods_of(job)
        ignored = [p for p in pods if self._ignored(spec, p)]
        failed = [p for p in pods if p["status"]["phase"] == "Failed" and p not in ignored]
        succeeded = [p for p in pods if p["status"]["phase"] == "Succeeded"]
        active = [p for p in pods if p["status"]["phase"] in ("Pending", "Running")]
        status.update(
            active=len(active),
            failed=len(failed),
            succeeded=len(succeeded),
            ready=sum(p["status"]["phase"] == "Running" for p in active),
        )
        outcome: tuple[str, str, str] | None = None
        deadline = spec.get("activeDeadlineSeconds")
        if succeeded:
            outcome = (
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            )
        elif len(failed) > spec.get("backoffLimit", 6):
            outcome = (
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
        elif deadline is not None and time.time() - started > deadline:
            outcome = (
                "Failed",
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            )
        if outcome is not None:
            for pod in active:
                self._pod_failed(pod, "Terminated", "the Job finished")
            first = "SuccessCriteriaMet" if outcome[0] == "Complete" else "FailureTarget"
            status["conditions"] = [
                {
                    "type": t,
                    "status": "True",
                    "reason": outcome[1],
                    "message": outcome[2],
                    "lastProbeTime": now(),
                    "lastTransitionTime": now(),
                }
                for t in (first, outcome[0])
            ]
            status.update(active=0, completionTime=now())
            self.clock[uid + "/end"] = time.time()
            self._set_status("jobs", job, status)
            return
        if not active:
            counted = len(failed)
            due = self.next_pod_at.setdefault(
                f"{uid}/{counted}",
                time.time() + (self.backoff * 2 ** (counted - 1) if counted else 0),
            )
            if time.time() >= due:
                self._new_pod(job)
        self._set_status("jobs", job, status)

    def _ignored(self, spec: JSON, pod: JSON) -> bool:
        if pod["status"]["phase"] != "Failed":
            return False
        held = {c["type"] for c in pod["status"].get("conditions") or [] if c["status"] == "True"}
        for rule in (spec.get("podFailurePolicy") or {}).get("rules") or []:
            if rule.get("action") == "Ignore" and any(
                c.get("type") in held for c in rule.get("onPodConditions") or []
            ):
                return True
        return False

    def _new_pod(self, job: JSON) -> None:
        template = copy.deepcopy(job["spec"]["template"])
        meta = template.get("metadata") or {}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{job['metadata']['name']}-{secrets.token_hex(3)[:5]}",
                "labels": meta.get("labels") or {},
                "annotations": meta.get("annotations") or {},
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "controller": True,
                        "name": job["metadata"]["name"],
                        "uid": job["metadata"]["uid"],
                    }
                ],
            },
            "spec": template["spec"],
        }
        if not pod["metadata"]["annotations"]:
            del pod["metadata"]["annotations"]
        self.create("pods", job["metadata"]["namespace"], pod)

    def evict(self, ns: str, name: str) -> None:
        pod = self.objects.get(("pods", ns, name))
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found')
        self._pod_failed(pod, "Evicted", "Eviction API: evicting", condition="DisruptionTarget")


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
