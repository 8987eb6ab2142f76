"""Target settings: `[tool.pipec.targets.<target>]` in pyproject.toml, overridden by `--set`.

Each target has one pydantic model; the models share their common parts by inheritance, so one
concept has one name on every target that has it:

* `TargetSettings`: the base (frozen, unknown keys are an error);
* `ContainerSettings`: targets that run steps in containers (`image`, `artifact_root`);
* `KubernetesSettings`: targets whose steps are Kubernetes pods (`secret_name` and the GPU
  placement settings), rendered by `pipec.backends.common.k8s`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from pipec.ir import graph
from pipec.ir.diagnostics import InvalidInput
from pipec.ir.model import Pipeline


class TargetSettings(BaseModel):
    """Base of a target's settings (`[tool.pipec.targets.<name>]` and `--set key=value`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ContainerSettings(TargetSettings):
    """Settings shared by every target that runs steps in containers.

    `image` is the default step image (a step's own `image` wins); `artifact_root` is where step
    outputs live (a folder every step can reach, or an fsspec URL).
    """

    image: str | None = None
    artifact_root: str | None = None


class KubernetesSettings(ContainerSettings):
    """Settings of every target whose steps run as Kubernetes pods.

    `secret_name` is the Kubernetes Secret whose keys (named like a step's secrets) become the
    step's environment variables. A GPU step asks for `gpu_resource` (an extended resource, as a
    limit), lands on nodes whose `gpu_node_label` equals its `gpu_type`, and tolerates the taint
    `gpu_toleration` (GPU node pools are usually tainted; None tolerates nothing).
    """

    secret_name: str = "pipec-secrets"
    gpu_resource: str = "nvidia.com/gpu"
    gpu_node_label: str = "cloud.google.com/gke-accelerator"
    gpu_toleration: str | None = "nvidia.com/gpu"


class SettingsError(InvalidInput):
    """Target settings that do not validate; the message lists the known keys."""


def load_settings(
    model: type[TargetSettings], target: str, raw: Mapping[str, Any]
) -> TargetSettings:
    """Validate raw settings against a target's model, turning errors into one clear message."""
    known = sorted(model.model_fields)
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise SettingsError(
            f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for target "
            f"{target!r}; known settings: {', '.join(known) or '(none)'}"
        )
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid settings for target {target!r}: {problems}") from None


def require_images(pipeline: Pipeline, default_image: str | None, target: str) -> None:
    """Targets that run steps in containers need an image for each: the step's own or the
    target's `image` setting. One error names every step without one."""
    if default_image is not None:
        return
    bare = [s.id for s in graph.steps(pipeline) if s.image is None]
    if bare:
        shown = ", ".join(bare[:5]) + (", ..." if len(bare) > 5 else "")
        raise SettingsError(
            f"target {target!r} needs an image for step{'s' if len(bare) > 1 else ''} {shown}: "
            f"set `image` in [tool.pipec.targets.{target}] or --set image=..., or give the step "
            "its own image"
        )
