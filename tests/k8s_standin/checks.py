"""What the stand-in API server checks before it stores an object, as a real one would:

* the official schema of the kind (`kubernetes-validate`'s strict schemas, for the oldest and the
  newest version pipec supports: unknown fields and wrong types are refused);
* the API server's own validation that no schema states (names, label syntax, quantities,
  requests not above limits, restart policies, env names, volume mounts, immutable ConfigMaps,
  the 1 MiB ConfigMap limit, podFailurePolicy's restartPolicy rule);
* PodSecurity admission at the `restricted` level on everything that holds a pod template (the
  real server warns on Jobs and refuses their pods; the stand-in refuses the Job itself, so a
  test sees the violation at once).

`problems(obj)` returns the reasons to refuse (empty: admitted).
"""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
from pss import pod_templates, violations

JSON = dict[str, Any]
SCHEMA_VERSIONS = ("1.30.0", "1.37.0")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?\d+))?$")
SUFFIX = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "": 1,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
}
CONFIGMAP_LIMIT = 1024 * 1024


def amount(text: str) -> float:
    """A quantity's value."""
    match = re.match(r"^([+-]?[\d.]+(?:[eE][+-]?\d+)?)([A-Za-z]*)$", text)
    assert match is not None
    return float(match.group(1)) * SUFFIX[match.group(2)]


def schema_problems(obj: JSON) -> list[str]:
    found = []
    for version in SCHEMA_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            found.append(f"{where}: {exc.message} (schema {version})")
        except kubernetes_validate.SchemaNotFoundError as exc:
            found.append(exc.message)
    return found


def _labels(where: str, labels: Any) -> list[str]:
    found = []
    for key, value in (labels or {}).items():
        prefix, _, name = key.rpartition("/")
        if (prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix))) or not (
            len(name) <= 63 and LABEL_NAME.match(name)
        ):
            found.append(f"{where}: invalid label key {key!r}")
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            found.append(f"{where}: invalid label value {value!r} for {key!r}")
    return found


def _resources(where: str, resources: JSON) -> list[str]:
    found = []
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    for kind, amounts in (("requests", requests), ("limits", limits)):
        for name, value in amounts.items():
            if not isinstance(value, str | int | float) or not QUANTITY.match(str(value)):
                found.append(f"{where}.resources.{kind}[{name}]: {value!r} is not a quantity")
    for name, value in requests.items():
        limit = str(limits.get(name, ""))
        if (
            QUANTITY.match(str(value))
            and QUANTITY.match(limit)
            and amount(str(value)) > amount(limit)
        ):
            found.append(f"{where}.resources.requests[{name}]: must be <= limit")
        extended = "/" in name and not name.startswith("kubernetes.io/")
        if extended and name in limits and str(value) != limit:
            found.append(f"{where}.resources.requests[{name}]: must equal the limit")
    return found


def pod_spec_problems(where: str, spec: JSON, in_job: bool) -> list[str]:
    found = []
    volumes = {v.get("name") for v in spec.get("volumes") or []}
    if in_job and spec.get("restartPolicy") not in ("Never", "OnFailure"):
        found.append(f"{where}.restartPolicy: Unsupported value, must be Never or OnFailure")
    names = set()
    for i, c in enumerate(spec.get("containers") or []):
        at = f"{where}.containers[{i}]"
        name = c.get("name", "")
        if not DNS_LABEL.match(name) or name in names:
            found.append(f"{at}.name: invalid or duplicate {name!r}")
        names.add(name)
        for var in c.get("env") or []:
            if not ENV_NAME.match(var.get("name", "")):
                found.append(f"{at}.env: invalid name {var.get('name')!r}")
        for mount in c.get("volumeMounts") or []:
            if mount.get("name") not in volumes:
                found.append(f"{at}.volumeMounts: volume {mount.get('name')!r} not found")
        found += _resources(at, c.get("resources") or {})
    for v in spec.get("volumes") or []:
        if not DNS_LABEL.match(v.get("name", "")):
            found.append(f"{where}.volumes: invalid name {v.get('name')!r}")
    return found


def problems(obj: JSON, plural: str) -> list[str]:
    """Every reason the API server would refuse `obj` on create (see the module docstring)."""
    found = schema_problems(obj)
    if found:
        return found
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    limit = 63 if plural in {"jobs", "cronjobs"} else 253
    if plural == "cronjobs":
        limit = 52  # the controller appends an 11-character suffix for its Jobs
    if not name or len(name) > limit or not DNS_SUBDOMAIN.match(name):
        found.append(f"metadata.name: Invalid value {name!r}")
    found += _labels("metadata.labels", meta.get("labels"))
    if plural == "configmaps":
        size = sum(
            len(k) + len(v)
            for part in ("data", "binaryData")
            for k, v in (obj.get(part) or {}).items()
        )
        if size > CONFIGMAP_LIMIT:
            found.append("ConfigMap is too long: must have at most 1048576 bytes")
    job: JSON | None = None
    if plural == "jobs":
        job = obj.get("spec") or {}
    elif plural == "cronjobs":
        job = ((obj.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}
    if job is not None:
        template = job.get("template") or {}
        found += _labels(
            "spec.template.metadata.labels", (template.get("metadata") or {}).get("labels")
        )
        spec = template.get("spec") or {}
        found += pod_spec_problems("spec.template.spec", spec, in_job=True)
        if job.get("podFailurePolicy") and spec.get("restartPolicy") != "Never":
            found.append("spec.podFailurePolicy: only allowed with restartPolicy Never")
    if plural == "pods":
        found += pod_spec_problems("spec", obj.get("spec") or {}, in_job=False)
    for spec in pod_templates(obj):
        for line in violations(spec):
            found.append(f'violates PodSecurity "restricted:latest": {line}')
    return found
