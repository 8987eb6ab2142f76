"""The `kubeflow` target: a KFP PipelineSpec (`pipeline.yaml`) that Kubeflow Pipelines runs as is.

`emit` writes `pipeline.yaml`: the PipelineSpec, followed by the kfp-kubernetes platform config as
a second YAML document (as KFP does) when a step needs one — secrets as environment variables from
a Kubernetes Secret, a node selector and toleration for GPU steps, and timeouts as the pod's active
deadline. The spec is built in `spec` / `dag` / `components`; this module holds the KFP family's
base (`KfpBackend`, shared with `vertex`), the target's settings and its Kubernetes choices (the
hooks). The submitter (`submit`) speaks KFP's REST API directly; nothing here imports the kfp SDK.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import Field

from pipec.backends.base import Backend, Bundle, Capabilities
from pipec.backends.common import yaml_text
from pipec.backends.kubeflow import spec as ks
from pipec.backends.settings import ContainerSettings, TargetSettings, require_images
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


class KfpSettings(ContainerSettings):
    """Settings every KFP-family target shares.

    `image` is the default step image (it must hold pipec and the project's code); `code_root` is
    where the project's code lives inside it; `python` the interpreter that runs the step runtime.
    `pipec run --wait` polls the run every `poll_interval` seconds and gives up watching after
    `run_timeout` seconds (exit 1; the run goes on).
    """

    code_root: str = "/app"
    python: str = "python3"
    poll_interval: float = Field(default=5.0, gt=0)
    run_timeout: float = Field(default=86400.0, gt=0)


K = TypeVar("K", bound=KfpSettings)


class KfpBackend(Backend[K], Generic[K]):
    """What every KFP-family target does the same way: one PipelineSpec built by `spec`, with the
    target's own decisions supplied through `hooks`."""

    def assemble(self, pipeline: Pipeline) -> ks.Assembly:
        """The spec as dicts (the submitters reuse it)."""
        require_images(pipeline, self.settings.image, self.name)
        assembler = ks.SpecAssembler(
            pipeline, self.hooks(), self.settings.code_root, self.settings.python
        )
        return assembler.assemble(self.pipeline_root())

    def pipeline_root(self) -> str | None:
        """The spec's `defaultPipelineRoot`."""
        return self.settings.artifact_root

    @abstractmethod
    def hooks(self) -> ks.TargetHooks:
        """The target's own decisions (resources, platform config, extra checks)."""


class KubeflowSettings(KfpSettings):
    """`[tool.pipec.targets.kubeflow]`.

    `artifact_root` becomes the spec's default pipeline root. `secret_name` is the Kubernetes
    Secret whose keys (named like the step's secrets) become the step's environment variables.
    `gpu_resource`, `gpu_node_label` and `gpu_toleration` say how GPU steps are scheduled.
    `host` is the KFP API endpoint for `pipec run`, `experiment_id` the experiment runs go to, and
    `token_env` the environment variable holding a bearer token for the API (if it needs one).
    """

    secret_name: str = "pipec-secrets"
    gpu_resource: str = "nvidia.com/gpu"
    gpu_node_label: str = "cloud.google.com/gke-accelerator"
    gpu_toleration: str | None = "nvidia.com/gpu"
    host: str | None = None
    experiment_id: str | None = None
    token_env: str = "KFP_TOKEN"


class KubeflowBackend(KfpBackend[KubeflowSettings]):
    """Kubeflow Pipelines: one PipelineSpec, every step a container running the step runtime."""

    name: ClassVar[str] = "kubeflow"
    description: ClassVar[str] = "Kubeflow Pipelines: a PipelineSpec (pipeline.yaml)"
    extra: ClassVar[str | None] = None  # the submitter speaks plain HTTP to the KFP API
    capabilities: ClassVar[Capabilities] = Capabilities(KFP_FEATURES)
    settings_model: ClassVar[type[TargetSettings]] = KubeflowSettings
    submitter: ClassVar[str | None] = "pipec.backends.kubeflow.submit:submit"

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
    """Resources as Kubernetes requests; secrets, GPU placement and timeouts as platform config."""

    def __init__(self, settings: KubeflowSettings) -> None:
        self.settings = settings

    def image(self, step: Step) -> str:
        image = step.image or self.settings.image
        assert image is not None
        return image

    def check(self, step: Step) -> list[str]:
        # Disk requests are not among KFP_FEATURES: the shared capability check reports them.
        return []

    def resources(self, step: Step) -> JSON | None:
        r = step.resources
        found: JSON = {}
        if r.cpu is not None:
            found["resourceCpuRequest"] = f"{r.cpu:g}"
        if r.memory is not None:
            found["resourceMemoryRequest"] = r.memory
        if r.gpu:
            found["accelerator"] = {
                "resourceType": self.settings.gpu_resource,
                "resourceCount": str(r.gpu),
            }
        return found or None

    def platform(self, step: Step) -> JSON | None:
        found: JSON = {}
        if step.secrets:
            found["secretAsEnv"] = [
                {
                    "secretName": self.settings.secret_name,
                    "keyToEnv": [{"secretKey": s, "envVar": s} for s in step.secrets],
                }
            ]
        if step.resources.gpu:
            if step.resources.gpu_type:
                found["nodeSelector"] = {
                    "labels": {self.settings.gpu_node_label: step.resources.gpu_type}
                }
            if self.settings.gpu_toleration:
                found["tolerations"] = [
                    {
                        "key": self.settings.gpu_toleration,
                        "operator": "Exists",
                        "effect": "NoSchedule",
                    }
                ]
        if step.timeout is not None:
            # Kubernetes deadlines are whole seconds; round up so a step never gets less time.
            found["activeDeadlineSeconds"] = str(-int(-step.timeout // 1))
        return found or None
