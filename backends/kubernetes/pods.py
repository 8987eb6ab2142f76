"""The pods of the kubernetes target: what `common.k8s.pod_needs` renders (resources, GPU
placement, secret env, deadline), plus what a Job's pod needs beyond it, in one place for the
compiled templates and the Jobs the driver creates at run time.

What is added here, and why:

* **The restricted Pod Security Standard** on every pod: `runAsNonRoot` with a fixed non-root
  uid/gid (`run_as_user`; images often have no such user, and the kubelet refuses a root image
  user under `runAsNonRoot` unless a uid is given), `fsGroup` so the artifact volume is writable
  by it, seccomp `RuntimeDefault`, and per container `allowPrivilegeEscalation: false`,
  `capabilities.drop: [ALL]`, `readOnlyRootFilesystem: true`.
* **Scratch space**: with a read-only root file system (`read_only_root`, on by default; a
  step that writes into its working directory in the image needs it off), `/tmp` is an
  emptyDir (and `HOME` and `TMPDIR` point at it unless the step sets them), so libraries that
  cache under `~` still work.
* **The artifact volume**: the PersistentVolumeClaim `volume`, mounted at `volume_path`.
* **No API token in step pods** (`automountServiceAccountToken: false`): steps never call the
  API; only the driver does.
* **Command and arguments** are the runtime's (`runtime.invocation`), with every `$` doubled
  like env values (the kubelet expands `$(NAME)` in both).
* **One pod per attempt**: `backoffLimit: 0`, because retries are the scheduler's (so the retry
  delay is honored and each attempt has its own log); a pod the cluster disrupts (eviction,
  preemption, node drain) does not count (`podFailurePolicy` rule on `DisruptionTarget`), the Job
  controller starts a new one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipec.backends.common import k8s
from pipec.backends.kubernetes import names
from pipec.backends.kubernetes.settings import KubernetesTargetSettings
from pipec.backends.runner.plan import PlanStep
from pipec.backends.runtime.invocation import module_args

JSON = dict[str, Any]

SCRATCH_PATH = "/tmp"
STEP_CONTAINER = "step"
DRIVER_CONTAINER = "driver"
DISRUPTIONS_DO_NOT_COUNT: JSON = {
    "rules": [
        {"action": "Ignore", "onPodConditions": [{"status": "True", "type": "DisruptionTarget"}]}
    ]
}


def pod_security(settings: KubernetesTargetSettings) -> JSON:
    """The pod-level security context (restricted PSS)."""
    uid = settings.run_as_user
    return {
        "fsGroup": uid,
        "runAsGroup": uid,
        "runAsNonRoot": True,
        "runAsUser": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security(settings: KubernetesTargetSettings) -> JSON:
    """The container-level security context (restricted PSS; a read-only root unless
    `read_only_root` is off for steps that write into their working directory)."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": settings.read_only_root,
        "runAsNonRoot": True,
    }


def volumes(settings: KubernetesTargetSettings) -> tuple[list[JSON], list[JSON]]:
    """The volumes every pod has and their mounts: scratch, and the artifact volume if any."""
    found: list[JSON] = [{"name": "scratch", "emptyDir": {}}]
    mounts: list[JSON] = [{"name": "scratch", "mountPath": SCRATCH_PATH}]
    if settings.volume is not None:
        found.append({"name": "artifacts", "persistentVolumeClaim": {"claimName": settings.volume}})
        mounts.append({"name": "artifacts", "mountPath": settings.volume_path})
    return found, mounts


def plain_env(values: Mapping[str, str]) -> list[JSON]:
    """EnvVar objects for plain values (every `$` doubled), plus scratch HOME/TMPDIR."""
    env = {"HOME": SCRATCH_PATH, "TMPDIR": SCRATCH_PATH, **values}
    return [{"name": name, "value": k8s.env_value(value)} for name, value in env.items()]


def pod_spec(
    container: JSON,
    needs: k8s.PodNeeds,
    settings: KubernetesTargetSettings,
    *,
    service_account: str | None,
    api_access: bool,
    extra_volumes: Sequence[JSON] = (),
) -> JSON:
    """A Job's pod spec around one container (whose `securityContext`, `resources` and volume
    mounts are filled in here)."""
    found_volumes, mounts = volumes(settings)
    container = {
        **container,
        "securityContext": container_security(settings),
        "volumeMounts": [*mounts, *container.get("volumeMounts", [])],
    }
    if needs.resources:
        container["resources"] = needs.resources
    spec: JSON = {
        "automountServiceAccountToken": api_access,
        "containers": [container],
        "restartPolicy": "Never",
        "securityContext": pod_security(settings),
        "volumes": [*found_volumes, *extra_volumes],
    }
    if service_account is not None:
        spec["serviceAccountName"] = service_account
    if needs.node_selector:
        spec["nodeSelector"] = dict(needs.node_selector)
    if needs.tolerations:
        spec["tolerations"] = [dict(t) for t in needs.tolerations]
    if needs.active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = needs.active_deadline_seconds
    return spec


def step_labels(pipeline_id: str, run_id: str, step_id: str, iteration: str) -> dict[str, str]:
    """Labels of a step Job and its pod: `app.kubernetes.io/*`, run, step and iteration."""
    return {
        **names.common_labels(pipeline_id, "step"),
        names.RUN_LABEL: run_id,
        names.STEP_LABEL: step_id,
        names.ITERATION_LABEL: iteration,
    }


def step_job(
    step: PlanStep,
    pipeline_id: str,
    settings: KubernetesTargetSettings,
    *,
    name: str,
    run_id: str,
    iteration: str,
    counter: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    image: str,
) -> JSON:
    """The Job of one attempt of one step instance: the same function renders the compiled
    templates (with placeholders) and the Jobs the driver creates (with values).

    `argv` are the runtime's arguments; `env` the plain environment (secret values are never
    passed: secrets come from `secret_name` by `secretKeyRef`)."""
    needs = k8s.pod_needs(step.resources, step.secrets, step.timeout, settings)
    plain = {k: v for k, v in env.items() if k not in step.secrets}
    container: JSON = {
        "name": STEP_CONTAINER,
        "image": image,
        "command": [k8s.env_value(settings.python), *module_args()],
        "args": [k8s.env_value(arg) for arg in argv],
        "env": [*plain_env(plain), *needs.secret_env],
    }
    labels = step_labels(pipeline_id, run_id, step.id, iteration)
    annotations = {
        names.JOB_COUNTER_ANNOTATION: counter,
        "pipec.dev/retries": str(step.retries),
        "pipec.dev/retry-delay-seconds": f"{step.retry_delay:g}",
    }
    api_access = False
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "annotations": annotations,
            "labels": labels,
            "name": name,
            "namespace": settings.namespace,
        },
        "spec": {
            "backoffLimit": 0,
            "podFailurePolicy": DISRUPTIONS_DO_NOT_COUNT,
            "template": {
                "metadata": {"labels": labels},
                "spec": pod_spec(
                    container,
                    needs,
                    settings,
                    service_account=settings.step_service_account,
                    api_access=api_access,
                ),
            },
            "ttlSecondsAfterFinished": settings.ttl_seconds,
        },
    }
