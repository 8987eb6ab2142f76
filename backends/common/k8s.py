"""What a step's pod needs, rendered once for every target whose steps run as Kubernetes pods
(kubeflow's platform config and container resources, airflow's KubernetesPodOperator, and the
kubernetes and argo targets to come), plus Kubernetes' rules for values in the environment.

Everything is returned as plain Kubernetes-API dicts, spelled as the API spells them (camelCase);
a target only re-spells them (kfp-kubernetes' platform config, `k8s.V1ResourceRequirements(...)`
in a DAG file, a manifest).

The policy, the same on every target (`KubernetesSettings` names the knobs):

* **CPU is a request only.** The scheduler reserves it and the step gets at least that share of a
  busy node; a CPU limit would throttle the step even on an idle node (CFS quota), and a slower
  step is all it would buy. Written as a decimal number, rounded up to the millicore.
* **Memory: limit = request.** Memory cannot be taken back from a running process: a pod above its
  request is the first one the kubelet evicts when the node runs short, whichever step caused the
  shortage. With limit = request a step gets exactly the memory it asked for, a neighbour cannot
  eat into it, and a step that outgrows it fails on its own (OOMKilled, naming that step).
* **Disk (`ephemeral-storage`): limit = request**, for the same reason: a step that fills the
  node's disk otherwise gets a neighbour evicted; with a limit it is evicted itself, and says so.
* **GPUs are limits** of the extended resource `gpu_resource` (Kubernetes takes the request from
  the limit; extended resources cannot be overcommitted). A `gpu_type` adds a node selector
  `gpu_node_label: gpu_type`, and every GPU step tolerates the taint `gpu_toleration` (with any
  value, effect NoSchedule): GPU node pools are tainted so that other pods stay off them, and a
  toleration only permits, it never attracts. `gpu_toleration = None` adds none.
* **Secrets** become environment variables from the Secret `secret_name`, one key per secret,
  named like it (`secretKeyRef`); a missing key fails the pod's start, naming the key.
* **A timeout** is the pod's `activeDeadlineSeconds`, in whole seconds rounded up (a step never
  gets less time than it asked for), so the cluster ends the pod even if the engine that started
  it is gone.

Environment values: the kubelet expands `$(NAME)` and turns `$$` into `$` in env values (and in
command arguments), so a plain value has every `$` doubled (`env_value`), and JSON text handed
over in the environment writes `$` as its JSON escape `\\u0024` (`json_env_text`): the same JSON
value, with nothing left for the kubelet to expand.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipec.backends.settings import KubernetesSettings
from pipec.ir.model import Resources

JSON = dict[str, Any]

JSON_DOLLAR = "\\u0024"
"""`$` inside JSON text handed over in a container's environment (the same JSON value)."""


def env_value(text: str) -> str:
    """A container env value that reaches the process as written (every `$` doubled)."""
    return text.replace("$", "$$")


def json_env_text(value: Any) -> str:
    """Canonical JSON text of a value (sorted keys, no spaces, UTF-8) with no `$` in it: what a
    step reads back from an environment variable (`--input NAME=env:VAR`)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate cannot be an environment variable as is
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text.replace("$", JSON_DOLLAR)


def cpu_quantity(cpu: float) -> str:
    """CPUs as a Kubernetes quantity, a decimal number rounded up to the millicore (Kubernetes
    takes CPU no finer than that): 4 -> "4", 0.5 -> "0.5", 0.0001 -> "0.001"."""
    millis = math.ceil(round(cpu * 1000, 6))  # round first: 0.1 * 1000 is 100.00000000000001
    whole, rest = divmod(millis, 1000)
    return str(whole) if rest == 0 else f"{whole}.{rest:03d}".rstrip("0")


@dataclass(frozen=True)
class PodNeeds:
    """What one step's pod needs, as Kubernetes-API dicts (see the module docstring)."""

    resources: JSON = field(default_factory=dict)
    """A ResourceRequirements: `requests` and `limits`, each present only when not empty."""
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[JSON] = field(default_factory=list)
    """Toleration objects (`key`, `operator`, `effect`)."""
    secret_env: list[JSON] = field(default_factory=list)
    """EnvVar objects whose value comes from a Secret key (`valueFrom.secretKeyRef`)."""
    active_deadline_seconds: int | None = None

    def __bool__(self) -> bool:
        return bool(
            self.resources
            or self.node_selector
            or self.tolerations
            or self.secret_env
            or self.active_deadline_seconds is not None
        )


def pod_needs(
    resources: Resources,
    secrets: Sequence[str],
    timeout: float | None,
    settings: KubernetesSettings,
) -> PodNeeds:
    """Everything a step's pod needs beyond its image, command and plain env."""
    return PodNeeds(
        resources=resource_requirements(resources, settings),
        node_selector=node_selector(resources, settings),
        tolerations=tolerations(resources, settings),
        secret_env=secret_env(secrets, settings),
        active_deadline_seconds=active_deadline_seconds(timeout),
    )


def resource_requirements(r: Resources, settings: KubernetesSettings) -> JSON:
    """Requests and limits: CPU requested, memory and disk requested and limited alike, GPUs as
    a limit of the extended resource."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if r.cpu is not None:
        requests["cpu"] = cpu_quantity(r.cpu)
    if r.memory is not None:
        requests["memory"] = limits["memory"] = r.memory
    if r.disk is not None:
        requests["ephemeral-storage"] = limits["ephemeral-storage"] = r.disk
    if r.gpu:
        limits[settings.gpu_resource] = str(r.gpu)
    found: JSON = {}
    if requests:
        found["requests"] = requests
    if limits:
        found["limits"] = limits
    return found


def node_selector(r: Resources, settings: KubernetesSettings) -> dict[str, str]:
    """GPU steps that name a GPU type land on nodes labelled with it."""
    if r.gpu and r.gpu_type:
        return {settings.gpu_node_label: r.gpu_type}
    return {}


def tolerations(r: Resources, settings: KubernetesSettings) -> list[JSON]:
    """GPU steps tolerate the GPU nodes' taint (any value, NoSchedule)."""
    if r.gpu and settings.gpu_toleration:
        return [{"key": settings.gpu_toleration, "operator": "Exists", "effect": "NoSchedule"}]
    return []


def secret_env(secrets: Sequence[str], settings: KubernetesSettings) -> list[JSON]:
    """One environment variable per secret, from the key of the same name in `secret_name`."""
    return [
        {"name": name, "valueFrom": {"secretKeyRef": {"name": settings.secret_name, "key": name}}}
        for name in secrets
    ]


def active_deadline_seconds(timeout: float | None) -> int | None:
    """A step timeout as the pod's deadline: whole seconds, rounded up."""
    return None if timeout is None else math.ceil(timeout)
