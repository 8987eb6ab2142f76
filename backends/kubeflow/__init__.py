"""The `kubeflow` target: a KFP PipelineSpec (`pipeline.yaml`) that Kubeflow Pipelines runs as is.

`emit` writes `pipeline.yaml`: the PipelineSpec, followed by the kfp-kubernetes platform config as
a second YAML document (as KFP does) when a step needs one — secrets as environment variables from
a Kubernetes Secret, a node selector and toleration for GPU steps, timeouts as the pod's active
deadline, and a disk request as a generic ephemeral volume of that size mounted at `scratch_path`
(the step finds it in `PIPEC_SCRATCH`; a PipelineSpec container has no ephemeral-storage field).
The spec is built in `spec` / `dag` / `components`; this module holds the KFP family's base
(`KfpBackend`, shared with `vertex`), the target's settings, and the hooks that spell the pod
`common.k8s` renders (the policy every pod target shares) the KFP way. The submitter (`submit`)
speaks KFP's REST API directly; nothing here imports the kfp SDK.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import Field, field_validator

from pipec.backends.base import Backend, Bundle, Capabilities, Limits
from pipec.backends.common import k8s, yaml_text
from pipec.backends.kubeflow import checks, metrics
from pipec.backends.kubeflow import spec as ks
from pipec.backends.settings import (
    ContainerSettings,
    KubernetesSettings,
    TargetSettings,
    require_images,
)
from pipec.ir import graph, quantity
from pipec.ir.diagnostics import Diagnostic, DiagnosticError
from pipec.ir.model import Pipeline, Step

JSON = dict[str, Any]

KFP_FEATURES = frozenset(
    {
        "condition",
        "loop_literal",
        "loop_param",
        "loop_output",
        "loop_parallelism",
        "collect",
        "nested",
        "after",
        "retries",
        "timeout",
        "cache",
        "resources",
        "gpu",
        "secrets",
        "env",
        "image",
        "schedule",
        "artifacts",
    }
)

SCRATCH_ENV = "PIPEC_SCRATCH"
"""The variable that tells a step with a disk request where its scratch volume is mounted."""

SCRATCH_VOLUME = "pipec-scratch"
"""The name of that volume in the pod (and of the PersistentVolumeClaim made for it)."""


class KfpSettings(ContainerSettings):
    """Settings every KFP-family target shares."""

    code_root: str = "/app"
    """Where the project's code lives inside the image (the step modules import from there)."""
    poll_interval: float = Field(default=5.0, gt=0)
    """Seconds between two looks at the run while `pipec run --wait` follows it."""
    run_timeout: float = Field(default=86400.0, gt=0)
    """Seconds `pipec run --wait` follows the run; then it gives up watching (exit 1; the run
    goes on)."""


K = TypeVar("K", bound=KfpSettings)


class KfpBackend(Backend[K], Generic[K]):
    """What every KFP-family target does the same way: one PipelineSpec built by `spec`, with the
    target's own decisions supplied through `hooks`."""

    notes: ClassVar[dict[str, str]] = {
        "collect": "of values and of artifacts (a KFP artifact list); of JSON-text values "
        "(any, optional): U001",
    }

    def assemble(self, pipeline: Pipeline) -> ks.Assembly:
        """The spec as dicts (the submitters reuse it)."""
        require_images(pipeline, self.settings.image, self.name)
        refused = self._step_refusals(pipeline)
        if refused:  # `check` reported them (or dropped them, with unsupported=warn) already
            raise DiagnosticError(refused)
        logging = frozenset(
            c.id for c in pipeline.components if metrics.logs_metrics(c, self.project_root)
        )
        assembler = ks.SpecAssembler(
            pipeline, self.hooks(), self.settings.code_root, self.settings.python, logging
        )
        return assembler.assemble(self.pipeline_root())

    def check(self, pipeline: Pipeline) -> list[Diagnostic]:
        """Caches that could serve stale results (W001), values that may be too long for a
        command line (W002) and constants that are (U001); see `checks`. Then the step options
        the target cannot express (`TargetHooks.check`)."""
        return checks.check(pipeline, self.name) + self._step_refusals(pipeline)

    def _step_refusals(self, pipeline: Pipeline) -> list[Diagnostic]:
        hooks = self.hooks()
        return [problem for step in graph.steps(pipeline) for problem in hooks.check(step)]

    def pipeline_root(self) -> str | None:
        """The spec's `defaultPipelineRoot`."""
        return self.settings.artifact_root

    @abstractmethod
    def hooks(self) -> ks.TargetHooks:
        """The target's own decisions (resources, platform config, extra checks)."""


class KubeflowSettings(KfpSettings, KubernetesSettings):
    """`[tool.pipec.targets.kubeflow]`. `secret_name` and the `gpu_*` settings are the ones
    every pod target shares (`KubernetesSettings`)."""

    artifact_root: str | None = None
    """The spec's default pipeline root (unset: the KFP deployment's default)."""
    host: str | None = None
    """The KFP API endpoint `pipec run` submits to."""
    experiment_id: str | None = None
    """The experiment runs go to (unset: the deployment's default experiment)."""
    token_env: str = "KFP_TOKEN"
    """The environment variable holding a bearer token for the API (if it needs one)."""
    scratch_path: str = "/scratch"
    """Where a step with a disk request finds its ephemeral volume of that size (its path is
    also in the step's `PIPEC_SCRATCH`)."""
    scratch_storage_class: str | None = None
    """The StorageClass that provisions a disk request's ephemeral volume (unset: the cluster's
    default StorageClass)."""

    @field_validator("scratch_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        # Kubernetes rejects a relative mountPath when the pod is created, long after compiling.
        if not value.startswith("/") or value == "/":
            raise ValueError(f"{value!r} is not an absolute path below / (a volume's mount path)")
        return value


class KubeflowBackend(KfpBackend[KubeflowSettings]):
    """Kubeflow Pipelines: one PipelineSpec, every step a container running the step runtime."""

    name: ClassVar[str] = "kubeflow"
    description: ClassVar[str] = "Kubeflow Pipelines: a PipelineSpec (pipeline.yaml)"
    extra: ClassVar[str | None] = None  # the submitter speaks plain HTTP to the KFP API
    capabilities: ClassVar[Capabilities] = Capabilities(KFP_FEATURES | {"disk"})
    notes: ClassVar[dict[str, str]] = {
        **KfpBackend.notes,
        "disk": "an ephemeral volume of that size at `scratch_path` (in PIPEC_SCRATCH)",
    }
    settings_model: ClassVar[type[TargetSettings]] = KubeflowSettings
    submitter: ClassVar[str | None] = "pipec.backends.kubeflow.submit:submit"
    # KFP keeps a run's compiled spec in an Argo Workflow, one Kubernetes object: at most
    # etcd's default request size (1.5 MiB).
    limits: ClassVar[Limits] = Limits(spec_bytes=1536 * 1024)

    def emit(self, pipeline: Pipeline) -> Bundle:
        """`pipeline.yaml`: the PipelineSpec (+ the platform spec document when needed)."""
        assembly = self.assemble(pipeline)
        documents = [assembly.pipeline_spec]
        if assembly.platform_spec:
            documents.append(assembly.platform_spec)
        return {"pipeline.yaml": yaml_text.dump_all(documents)}

    def hooks(self) -> ks.TargetHooks:
        return KubeflowHooks(self.settings)


class KubeflowHooks:
    """The pod a step needs (`common.k8s`), spelled the KFP way: requests, limits and the
    accelerator in the container's `resources`; secrets, GPU placement and the deadline in the
    kfp-kubernetes platform config."""

    target = "kubeflow"

    def __init__(self, settings: KubeflowSettings) -> None:
        self.settings = settings

    def image(self, step: Step) -> str:
        image = step.image or self.settings.image
        assert image is not None
        return image

    def check(self, step: Step) -> list[Diagnostic]:
        return []

    def _pod(self, step: Step) -> k8s.PodNeeds:
        return k8s.pod_needs(step.resources, step.secrets, step.timeout, self.settings)

    def resources(self, step: Step) -> JSON | None:
        return kfp_resources(self._pod(step).resources, self.settings.gpu_resource)

    def env(self, step: Step) -> dict[str, str]:
        if step.resources.disk is None:
            return {}
        return {SCRATCH_ENV: self.settings.scratch_path}

    def runtime_timeout(self, step: Step) -> float | None:
        return None  # the pod's active deadline keeps it (`platform`)

    def runtime_secrets(self, step: Step) -> str | None:
        return None  # a Kubernetes Secret as environment variables (`platform`)

    def platform(self, step: Step) -> JSON | None:
        found = kfp_platform(self._pod(step)) or {}
        if step.resources.disk is not None:
            found["genericEphemeralVolume"] = [
                scratch_volume(
                    step.resources.disk,
                    self.settings.scratch_path,
                    self.settings.scratch_storage_class,
                )
            ]
        return found or None


def scratch_volume(size: str, mount_path: str, storage_class: str | None) -> JSON:
    """A disk request as kfp-kubernetes' generic ephemeral volume: a PersistentVolumeClaim of
    `size` made for the pod, mounted in the step's container, and deleted with the pod. A
    volume rather than an `ephemeral-storage` request because a PipelineSpec container has no
    field for the latter; unlike the node's own disk the claim is the step's alone, so the size
    is what it gets (a full volume fails the step's writes, it evicts nobody)."""
    volume: JSON = {
        "volumeName": SCRATCH_VOLUME,
        "mountPath": mount_path,
        # One pod mounts it: ReadWriteOnce is the mode every provisioner supports.
        "accessModes": ["ReadWriteOnce"],
        "size": size,
    }
    if storage_class is None:
        volume["defaultStorageClass"] = True  # as kfp-kubernetes says "the cluster's default"
    else:
        volume["storageClassName"] = storage_class
    return volume


# The PipelineSpec's ResourceSpec fields for Kubernetes resource names: the quantity as written,
# and the number older backends read. KFP's driver reads the string fields first since KFP 2.4;
# KFP 2.0-2.3 (still run on clusters installed from Kubeflow 1.9) read only the numbers, CPUs in
# cores and memory in decimal GB. Both are written, as the KFP SDK writes them.
_RESOURCE_FIELDS = {
    ("requests", "cpu"): ("resourceCpuRequest", "cpuRequest"),
    ("limits", "cpu"): ("resourceCpuLimit", "cpuLimit"),
    ("requests", "memory"): ("resourceMemoryRequest", "memoryRequest"),
    ("limits", "memory"): ("resourceMemoryLimit", "memoryLimit"),
}


def memory_gb(text: str) -> float:
    """A Kubernetes memory quantity in decimal gigabytes, as the PipelineSpec's numeric memory
    fields hold it (the options pass has already rejected malformed quantities, R002)."""
    return round(quantity.amount(text) / 1e9, 9)


def kfp_resources(requirements: JSON, gpu_resource: str) -> JSON | None:
    """A Kubernetes ResourceRequirements as a PipelineSpec container's `resources`."""
    found: JSON = {}
    for kind, amounts in requirements.items():
        for name, amount in amounts.items():
            if (kind, name) in _RESOURCE_FIELDS:
                text_field, number_field = _RESOURCE_FIELDS[kind, name]
                found[text_field] = amount
                found[number_field] = memory_gb(amount) if name == "memory" else float(amount)
            elif (kind, name) == ("limits", gpu_resource):
                found["accelerator"] = {
                    "resourceType": name,
                    "resourceCount": amount,
                    "type": name,
                    "count": amount,  # an int64: a string in the proto's JSON form
                }
            elif name == "ephemeral-storage":
                continue  # no PipelineSpec field: the disk is a scratch volume (`scratch_volume`)
            else:
                raise AssertionError(f"no PipelineSpec field for {kind} of {name}")
    return found or None


def kfp_platform(pod: k8s.PodNeeds) -> JSON | None:
    """A step's pod needs as a kfp-kubernetes KubernetesExecutorConfig."""
    found: JSON = {}
    by_secret: dict[str, list[JSON]] = {}
    for env in pod.secret_env:
        ref = env["valueFrom"]["secretKeyRef"]
        key_to_env = {"secretKey": ref["key"], "envVar": env["name"]}
        by_secret.setdefault(ref["name"], []).append(key_to_env)
    if by_secret:
        # As kfp-kubernetes writes it: KFP 2.5 and later read `secretNameParameter`, earlier
        # backends `secretName`; `optional: false` is the Kubernetes default, spelled out.
        found["secretAsEnv"] = [
            {
                "secretName": name,
                "secretNameParameter": {"runtimeValue": {"constant": name}},
                "keyToEnv": keys,
                "optional": False,
            }
            for name, keys in by_secret.items()
        ]
    if pod.node_selector:
        found["nodeSelector"] = {"labels": dict(pod.node_selector)}
    if pod.tolerations:
        found["tolerations"] = [dict(t) for t in pod.tolerations]
    if pod.active_deadline_seconds is not None:
        # An int64 in the proto: its JSON form is a string.
        found["activeDeadlineSeconds"] = str(pod.active_deadline_seconds)
    return found or None
