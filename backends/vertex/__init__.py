"""The `vertex` target: `kubeflow` plus what Vertex AI Pipelines does differently.

Vertex runs the same PipelineSpec, so this target only states its differences:

* resources are Vertex machine shapes: CPU and memory *limits* (Vertex picks the machine from them)
  and accelerators by Vertex's names (`nvidia-l4` -> `NVIDIA_L4`);
* there is no Kubernetes underneath, so there is no platform spec: a step's timeout is kept by the
  step runtime itself (`--timeout`, `pipec.backends.runtime.attempts`), and its secrets are read
  by the runtime from Google Secret Manager (`--secret-manager`, `pipec.backends.runtime.
  gcp_secrets`) as the job's service account: names in the spec, never values;
* besides `pipeline.yaml` it writes the exact REST request bodies: `pipeline_job.json` (a
  PipelineJob: spec, runtime config, labels, service account, network, encryption) and, for a
  scheduled pipeline, `schedule.json` (a Schedule that creates that PipelineJob).

Settings come from `[tool.pipec.targets.vertex]` or `--set`; `project`, `region` and
`pipeline_root` are required, and their absence is reported before anything is written or sent.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from pydantic import Field, field_validator

from pipec.backends.base import Bundle, Capabilities
from pipec.backends.common import k8s, yaml_text
from pipec.backends.diagnostics import unsupported_feature
from pipec.backends.kubeflow import KFP_FEATURES, KfpBackend, KfpSettings, memory_gb
from pipec.backends.kubeflow import components as kx
from pipec.backends.kubeflow import spec as ks
from pipec.backends.settings import SettingsError, TargetSettings
from pipec.ir import quantity
from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import Pipeline, Step

JSON = dict[str, Any]


class VertexSettings(KfpSettings):
    """`[tool.pipec.targets.vertex]`."""

    required_settings = frozenset({"project", "region", "pipeline_root"})

    artifact_root: str | None = None
    """Another name for `pipeline_root`."""
    project: str | None = None
    """The Google Cloud project the PipelineJob runs in (required)."""
    region: str | None = None
    """The Vertex AI region, e.g. `europe-west4` (required)."""
    pipeline_root: str | None = None
    """Where Vertex writes artifacts: a gs:// URL (required)."""
    service_account: str | None = None
    """The service account the job runs as (unset: the project's default compute account)."""
    network: str | None = None
    """The VPC network the job peers with, as written into the PipelineJob."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels of the PipelineJob."""
    encryption_key: str | None = None
    """A Cloud KMS key name for customer-managed encryption of the job's resources."""
    api_endpoint: str | None = None
    """The Vertex AI REST API (unset: `https://<region>-aiplatform.googleapis.com`)."""
    secrets_project: str | None = None
    """The project whose Secret Manager holds the steps' secrets (unset: `project`); the job's
    service account needs roles/secretmanager.secretAccessor on them."""

    @field_validator("pipeline_root", "artifact_root")
    @classmethod
    def _on_cloud_storage(cls, value: str | None) -> str | None:
        # Vertex writes artifacts to Cloud Storage only; another scheme fails when the job runs.
        if value is not None and not value.startswith("gs://"):
            raise ValueError(f"{value!r} is not a gs:// URL (Vertex writes to Cloud Storage)")
        return value

    def root(self) -> str | None:
        """The pipeline root, whichever name it was given under."""
        return self.pipeline_root or self.artifact_root

    def endpoint(self) -> str:
        """The base URL of the Vertex AI REST API for the region."""
        return (self.api_endpoint or f"https://{self.region}-aiplatform.googleapis.com").rstrip("/")

    def require(self) -> None:
        """Raise a SettingsError naming every required setting that is missing."""
        missing = [name for name in ("project", "region") if not getattr(self, name)]
        if not self.root():
            missing.append("pipeline_root")
        if missing:
            raise SettingsError(
                f"target 'vertex' needs {', '.join(missing)}: set them in "
                "[tool.pipec.targets.vertex] or with --set key=value"
            )
        if self.pipeline_root and self.artifact_root and self.pipeline_root != self.artifact_root:
            raise SettingsError(
                "target 'vertex': pipeline_root and artifact_root name the same thing; give one"
            )


BOOT_DISK_BYTES = 100 * 10**9
"""Vertex runs each pipeline task on a machine with a 100 GB boot disk (its default DiskSpec)."""


class VertexBackend(KfpBackend[VertexSettings]):
    """Vertex AI Pipelines: the kubeflow spec with Vertex resources, plus the REST requests."""

    name: ClassVar[str] = "vertex"
    description: ClassVar[str] = "Vertex AI Pipelines: PipelineSpec + PipelineJob request"
    extra: ClassVar[str | None] = "vertex"
    capabilities: ClassVar[Capabilities] = Capabilities(KFP_FEATURES | {"disk"})
    notes: ClassVar[dict[str, str]] = {
        **KfpBackend.notes,
        # A Vertex pipeline task runs as a CustomJob whose DiskSpec (boot disk size and type) the
        # PipelineSpec cannot set; only a task wrapped as its own CustomJob launcher could.
        "disk": "up to the 100 GB boot disk Vertex gives every task (the image and system share "
        "it; a PipelineSpec cannot size it); a larger request is U001",
    }
    how: ClassVar[dict[str, str]] = {
        "secrets": "from Google Secret Manager (projects/<secrets_project>/secrets/<name>/"
        "versions/latest), read by the step runtime as the job's service account",
    }
    settings_model: ClassVar[type[TargetSettings]] = VertexSettings
    submitter: ClassVar[str | None] = "pipec.backends.vertex.submit:submit"

    def emit(self, pipeline: Pipeline) -> Bundle:
        """`pipeline.yaml`, `pipeline_job.json`, and `schedule.json` for a scheduled pipeline."""
        self.settings.require()
        spec = self.assemble(pipeline).pipeline_spec
        job = pipeline_job(pipeline, self.settings, spec)
        bundle = {
            "pipeline.yaml": yaml_text.dump_all([spec]),
            "pipeline_job.json": dump_json(job),
        }
        if pipeline.schedule:
            bundle["schedule.json"] = dump_json(schedule(pipeline, self.settings, job))
        return bundle

    def pipeline_root(self) -> str | None:
        return self.settings.root()

    def hooks(self) -> ks.TargetHooks:
        return VertexHooks(self.settings)


class VertexHooks:
    """Machine shapes and accelerator names as Vertex reads them; no platform config."""

    target = "vertex"

    def __init__(self, settings: VertexSettings) -> None:
        self.settings = settings

    def image(self, step: Step) -> str:
        image = step.image or self.settings.image
        assert image is not None
        return image

    def check(self, step: Step) -> list[Diagnostic]:
        problems = []
        if step.resources.gpu and not step.resources.gpu_type:
            problems.append(
                unsupported_feature(
                    self.target,
                    step.id,
                    step.location,
                    "GPUs without a gpu_type (Vertex needs one, e.g. nvidia-l4)",
                    "give the step a gpu_type (e.g. nvidia-l4, nvidia-tesla-t4)",
                    drop="gpu",
                )
            )
        disk = step.resources.disk
        if disk is not None and quantity.to_bytes(disk) > BOOT_DISK_BYTES:
            problems.append(
                unsupported_feature(
                    self.target,
                    step.id,
                    step.location,
                    f"a disk request of {disk}, more than the 100 GB boot disk Vertex gives every "
                    "task (a PipelineSpec cannot size it)",
                    "request at most 100G (the image and system share it), or use the kubeflow "
                    "target, whose steps get a volume of the size asked for",
                    drop="disk",
                )
            )
        return problems

    def resources(self, step: Step) -> JSON | None:
        r = step.resources
        found: JSON = {}
        if r.cpu is not None:
            found["cpuLimit"] = float(r.cpu)
            found["resourceCpuLimit"] = k8s.cpu_quantity(r.cpu)
        if r.memory is not None:
            found["memoryLimit"] = memory_gb(r.memory)
            found["resourceMemoryLimit"] = r.memory
        if r.gpu and r.gpu_type:
            name = accelerator_name(r.gpu_type)
            found["accelerator"] = {
                "type": name,
                "count": str(r.gpu),
                "resourceType": name,
                "resourceCount": str(r.gpu),
            }
        return found or None

    def platform(self, step: Step) -> JSON | None:
        return None

    def env(self, step: Step) -> dict[str, str]:
        return {}

    def runtime_timeout(self, step: Step) -> float | None:
        # Vertex has no per-task timeout in a PipelineSpec: the runtime keeps it (each attempt
        # of a task Vertex retries gets the whole timeout, as on every target).
        return step.timeout

    def runtime_secrets(self, step: Step) -> str | None:
        # No Kubernetes Secret on Vertex, and a spec must not hold values: the runtime reads
        # them from Secret Manager in the container, as the job's service account.
        return self.settings.secrets_project or self.settings.project


def accelerator_name(gpu_type: str) -> str:
    """Vertex's accelerator enum name for a GPU type (`nvidia-tesla-t4` -> `NVIDIA_TESLA_T4`)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", gpu_type).strip("_").upper()


def pipeline_job(pipeline: Pipeline, settings: VertexSettings, spec: JSON) -> JSON:
    """The PipelineJob request body, with the parameters' defaults as parameter values."""
    values = {
        p.name: kx.kfp_value(p.default, p.type)
        for p in pipeline.params
        if not p.required and (p.default is not None or kx.carried_as_json_text(p.type))
    }
    runtime: JSON = {"gcsOutputDirectory": settings.root()}
    if values:
        runtime["parameterValues"] = values
    job: JSON = {"displayName": pipeline.name, "pipelineSpec": spec, "runtimeConfig": runtime}
    if settings.labels:
        job["labels"] = dict(settings.labels)
    if settings.service_account:
        job["serviceAccount"] = settings.service_account
    if settings.network:
        job["network"] = settings.network
    if settings.encryption_key:
        job["encryptionSpec"] = {"kmsKeyName": settings.encryption_key}
    return job


def schedule(pipeline: Pipeline, settings: VertexSettings, job: JSON) -> JSON:
    """The Schedule request body that creates `job` on the pipeline's cron schedule."""
    return {
        "displayName": pipeline.name,
        "cron": pipeline.schedule,
        "maxConcurrentRunCount": "1",
        "createPipelineJobRequest": {
            "parent": f"projects/{settings.project}/locations/{settings.region}",
            "pipelineJob": job,
        },
    }


def dump_json(data: JSON) -> str:
    """Deterministic JSON text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
