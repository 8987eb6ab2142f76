"""The objects `pipec compile --target kubernetes` writes and `pipec run` applies.

    1-rbac.yaml       ServiceAccount, Role, RoleBinding: the driver's least privilege
    2-plan.yaml       ConfigMap: the plan and the target settings the driver reads
    3-driver.yaml     the driver Job (or a CronJob when the pipeline has a schedule)
    steps/<id>.yaml   every step's Job template, for reading (`kubectl apply -f DIR` does not
                      descend into it): `pods.step_job`, the function the driver calls at run
                      time, with `{placeholders}` where values exist only at run time

The files are numbered in the order `kubectl apply -f DIR` should create them (it applies a
folder's files in name order). The ConfigMap is named by its content and immutable, so a running
driver (or a restarted one) never sees another run's plan.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pipec.backends.base import Bundle
from pipec.backends.common import k8s, yaml_text
from pipec.backends.kubernetes import names, pods
from pipec.backends.kubernetes.settings import KubernetesTargetSettings
from pipec.backends.runner.plan import Plan, PlanStep, render
from pipec.ir.diagnostics import InvalidInput
from pipec.ir.model import Resources

JSON = dict[str, Any]

PLAN_MOUNT = "/etc/pipec"
PLAN_KEY = "plan.json"
PLAN_GZIP_KEY = "plan.json.gz"
SETTINGS_KEY = "settings.json"
DRIVER_MODULE = "pipec.backends.kubernetes.driver"
CONFIGMAP_LIMIT = 1024 * 1024
"""The API server's limit for a ConfigMap's data (1 MiB)."""
PLAIN_PLAN_LIMIT = 900 * 1024
"""Above this the plan is stored gzipped in `binaryData` (plans of thousands of steps)."""

# What the driver does with the API, and nothing more (docs/targets/kubernetes.md, "RBAC").
DRIVER_RULES: list[JSON] = [
    {
        "apiGroups": ["batch"],
        "resources": ["jobs"],
        "verbs": ["create", "delete", "get", "list", "watch"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
]


class ManifestError(InvalidInput):
    """The pipeline cannot be written as manifests (a plan too large for a ConfigMap)."""


@dataclass(frozen=True)
class Manifests:
    """Every object, in apply order, plus the step templates."""

    rbac: list[JSON]
    plan: JSON
    driver: JSON
    templates: dict[str, JSON]

    def applied(self) -> list[JSON]:
        """What `kubectl apply -f DIR` (and `pipec run`) creates, in order."""
        return [*self.rbac, self.plan, self.driver]

    def bundle(self) -> Bundle:
        """The files (see the module docstring)."""
        files: Bundle = {
            "1-rbac.yaml": yaml_text.dump_all(self.rbac),
            "2-plan.yaml": yaml_text.dump(self.plan),
            "3-driver.yaml": yaml_text.dump(self.driver),
        }
        for step_id, job in self.templates.items():
            files[f"steps/{step_id}.yaml"] = TEMPLATE_NOTE + yaml_text.dump(job)
        return files


TEMPLATE_NOTE = (
    "# The Job the driver creates for each attempt of this step (not for kubectl apply).\n"
    "# {run_id}, {iteration}, {input:NAME}, {job_name}, {job} and {attempt} are filled in at\n"
    "# run time; see docs/targets/kubernetes.md in pipec.\n"
)


def settings_text(settings: KubernetesTargetSettings) -> str:
    """The settings the driver reads, as canonical JSON."""
    return json.dumps(settings.model_dump(mode="json"), sort_keys=True, indent=2) + "\n"


def build(
    plan: Plan,
    settings: KubernetesTargetSettings,
    *,
    schedule: str | None,
    run_id: str | None = None,
    params_json: str | None = None,
) -> Manifests:
    """The manifests of a plan. Without `run_id` (compile): the driver's run id is its Job's
    uid, so each `kubectl apply` of a deleted-and-recreated Job is a new run. With one
    (`pipec run`): the driver Job is named after the run and gets the run id and the given
    parameters."""
    # Compact: the ConfigMap holds it as one escaped string anyway, and large plans must fit.
    plan_text = json.dumps(
        plan.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    config = settings_text(settings)
    digest = hashlib.sha256((plan_text + "\0" + config).encode()).hexdigest()
    configmap_name = names.plan_configmap_name(plan.pipeline.id, digest)
    return Manifests(
        rbac=rbac(plan.pipeline.id, settings),
        plan=plan_configmap(plan.pipeline.id, configmap_name, plan_text, config, settings),
        driver=driver(plan, settings, configmap_name, schedule, run_id, params_json),
        templates={
            step_id: template(plan, plan.steps[step_id], settings) for step_id in plan.order
        },
    )


def _metadata(name: str, settings: KubernetesTargetSettings, labels: dict[str, str]) -> JSON:
    return {"labels": labels, "name": name, "namespace": settings.namespace}


def rbac(pipeline_id: str, settings: KubernetesTargetSettings) -> list[JSON]:
    """The driver's ServiceAccount, its Role (DRIVER_RULES, this namespace only) and binding."""
    name = settings.service_account
    labels = names.common_labels(pipeline_id, "driver")
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _metadata(name, settings, labels),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _metadata(name, settings, labels),
            "rules": DRIVER_RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _metadata(name, settings, labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": settings.namespace}],
        },
    ]


def plan_configmap(
    pipeline_id: str, name: str, plan_text: str, config: str, settings: KubernetesTargetSettings
) -> JSON:
    """The plan (gzipped when large) and the settings, immutable."""
    found: JSON = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "data": {SETTINGS_KEY: config},
        "immutable": True,
        "metadata": _metadata(name, settings, names.common_labels(pipeline_id, "plan")),
    }
    encoded = plan_text.encode()
    if len(encoded) <= PLAIN_PLAN_LIMIT:
        found["data"][PLAN_KEY] = plan_text
        return found
    packed = gzip.compress(encoded, compresslevel=9, mtime=0)
    text = base64.b64encode(packed).decode("ascii")
    if len(text) + len(config) > CONFIGMAP_LIMIT:
        raise ManifestError(
            f"the plan is {len(encoded)} bytes ({len(packed)} gzipped), more than a ConfigMap "
            "holds (1 MiB): split the pipeline"
        )
    found["binaryData"] = {PLAN_GZIP_KEY: text}
    return found


def driver(
    plan: Plan,
    settings: KubernetesTargetSettings,
    configmap_name: str,
    schedule: str | None,
    run_id: str | None,
    params_json: str | None,
) -> JSON:
    """The driver Job, or a CronJob around it for a scheduled pipeline."""
    pipeline_id = plan.pipeline.id
    labels = names.common_labels(pipeline_id, "driver")
    if run_id is None:
        run_env: JSON = {
            "name": "PIPEC_RUN_ID",
            "valueFrom": {
                "fieldRef": {"fieldPath": f"metadata.labels['{names.CONTROLLER_UID_LABEL}']"}
            },
        }
    else:
        labels = {**labels, names.RUN_LABEL: run_id}
        run_env = {"name": "PIPEC_RUN_ID", "value": k8s.env_value(run_id)}
    env: list[JSON] = [run_env, {"name": "PYTHONUNBUFFERED", "value": "1"}]
    if params_json is not None:
        env.append({"name": "PIPEC_PARAMS", "value": params_json})
    env += pods.plain_env({})
    # The scheduler reads secret values to mask them in step logs; steps get them from the
    # Secret themselves. Optional: a missing key fails its step with the scheduler's message.
    for secret in sorted({s for step in plan.steps.values() for s in step.secrets}):
        ref = {"key": secret, "name": settings.secret_name, "optional": True}
        env.append({"name": secret, "valueFrom": {"secretKeyRef": ref}})
    needs = k8s.pod_needs(
        Resources(cpu=settings.driver_cpu, memory=settings.driver_memory), (), None, settings
    )
    container: JSON = {
        "name": pods.DRIVER_CONTAINER,
        "image": _image(settings.image),
        "command": [k8s.env_value(settings.python), "-m", DRIVER_MODULE],
        "args": ["--config", PLAN_MOUNT],
        "env": env,
        "volumeMounts": [{"mountPath": PLAN_MOUNT, "name": "plan", "readOnly": True}],
    }
    plan_volume = {"configMap": {"name": configmap_name}, "name": "plan"}
    job_spec: JSON = {
        "backoffLimit": settings.driver_restarts,
        "podFailurePolicy": pods.DISRUPTIONS_DO_NOT_COUNT,
        "template": {
            "metadata": {"labels": labels},
            "spec": pods.pod_spec(
                container,
                needs,
                settings,
                service_account=settings.service_account,
                api_access=True,
                extra_volumes=[plan_volume],
            ),
        },
        "ttlSecondsAfterFinished": settings.ttl_seconds,
    }
    name = names.driver_job_name(pipeline_id, run_id)
    if schedule is None or run_id is not None:
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": _metadata(name, settings, labels),
            "spec": job_spec,
        }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _metadata(name, settings, labels),
        "spec": {
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {"metadata": {"labels": labels}, "spec": job_spec},
            "schedule": schedule,
            "timeZone": "Etc/UTC",
        },
    }


def _image(image: str | None) -> str:
    if image is None:  # `require_images` ran before; the driver needs the default image
        raise ManifestError("target 'kubernetes' needs the `image` setting for the driver")
    return image


def template(plan: Plan, step: PlanStep, settings: KubernetesTargetSettings) -> JSON:
    """A step's Job as the driver renders it, with run-time values as `{placeholders}`."""
    known = {"project_root": settings.code_root, "artifact_root": settings.resolved_artifact_root()}

    def lookup(name: str) -> str:
        return known.get(name, "{" + name + "}")

    argv = [render(arg, lookup) for arg in step.runtime_args]
    env = {
        **step.env,
        "PIPEC_RUN_ID": "{run_id}",
        "PIPEC_STEP_ID": step.id,
        "PIPEC_ITERATION": "{iteration}",
        "PIPEC_ATTEMPT": "{attempt}",
    }
    image = step.image or _image(plan.settings.image)
    return pods.step_job(
        step,
        plan.pipeline.id,
        settings,
        name="{job_name}",
        run_id="{run_id}",
        iteration="{iteration}",
        counter="{job}",
        argv=argv,
        env=env,
        image=image,
    )
