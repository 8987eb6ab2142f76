"""The stand-in's object store (part of the stand-in API server, server.py; NOT Kubernetes):
create, get, list (equality label selectors), replace and delete of namespaced objects, each
write checked as a real API server would (`checks`: official schemas, API validation, then
PodSecurity restricted), a window of watch events, and RBAC for service account tokens (the
admin token may do anything; a pod's token is authorized by the stored Roles and RoleBindings,
namespaced rules only).

Not modelled: patch, server-side apply, status subresources, finalizers, field selectors,
set-based label selectors, other namespaces' objects, cluster-scoped RBAC.
"""

from __future__ import annotations

import base64
import copy
import secrets
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from checks import problems

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


class Objects:
    """The objects, their watch events and the tokens pods were given."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.objects: dict[tuple[str, str, str], JSON] = {}
        self.events: list[tuple[int, str, str, str, JSON]] = []
        self.version = 1
        self.admin_token = secrets.token_hex(16)
        self.tokens: dict[str, tuple[str, str]] = {}

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
        self._deleted(plural, ns, obj, propagation)
        return obj

    def _deleted(self, plural: str, ns: str, obj: JSON, propagation: str | None) -> None:
        """What deleting `obj` sets off (the controllers' business: `controllers.Cluster`)."""

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
