"""Target settings: `[tool.pipec.targets.<target>]` in pyproject.toml, overridden by `--set`.

Each target has one pydantic model; the models share their common parts by inheritance, so one
concept has one name on every target that has it:

* `TargetSettings`: the base (frozen, unknown keys are an error);
* `ContainerSettings`: targets that run steps in containers (`image`, `artifact_root`, `python`,
  `code_root`);
* `KubernetesSettings`: targets whose steps are Kubernetes pods (`secret_name` and the GPU
  placement settings), rendered by `pipec.backends.common.k8s`.

A key a target does not know is an error that lists the known keys, and names the closest one
when there is one (a renamed setting, such as airflow's old `kubernetes_secret`, points at its
new name).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipec.ir import graph
from pipec.ir.diagnostics import InvalidInput
from pipec.ir.model import Pipeline


class TargetSettings(BaseModel):
    """Base of a target's settings (`[tool.pipec.targets.<name>]` and `--set key=value`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ContainerSettings(TargetSettings):
    """Settings shared by every target that runs steps in containers.

    `image` is the default step image (a step's own `image` wins); `artifact_root` is where step
    outputs live (a folder every step can reach, or an fsspec URL); `python` is the interpreter
    that runs the step runtime in the image; `code_root` is the folder the step modules import
    from (`--code-root`; None leaves it to the image's working directory). A target may change
    a default (the KFP family puts the code in `/app`).
    """

    image: str | None = None
    artifact_root: str | None = None
    python: str = Field(default="python3", min_length=1)
    code_root: str | None = None

    @field_validator("image", "artifact_root", "python", "code_root")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        # A blank value would be written into the engine's files as is (`image: " "`).
        if value is not None and not value.strip():
            raise ValueError("must not be blank (leave the setting out instead)")
        return value


class KubernetesSettings(ContainerSettings):
    """Settings of every target whose steps run as Kubernetes pods.

    `secret_name` is the Kubernetes Secret whose keys (named like a step's secrets) become the
    step's environment variables. A GPU step asks for `gpu_resource` (an extended resource, as a
    limit), lands on nodes whose `gpu_node_label` equals its `gpu_type`, and tolerates the taint
    `gpu_toleration` (GPU node pools are usually tainted; None tolerates nothing). How these
    become a pod, and why (the resource policy), is `pipec.backends.common.k8s`.
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
        near = {key: found for key in unknown if (found := _closest(key, known))}
        if len(unknown) == 1 and near:
            hint = f" (did you mean {near[unknown[0]]}?)"
        elif near:
            hint = f" (did you mean {', '.join(f'{v} for {k}' for k, v in near.items())}?)"
        else:
            hint = ""
        raise SettingsError(
            f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for target "
            f"{target!r}{hint}; known settings: {', '.join(known) or '(none)'}"
        )
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid settings for target {target!r}: {problems}") from None


# Settings that were renamed: the old key's error names the new one even where the spelling is
# too far apart for a fuzzy match.
RENAMED = {"kubernetes_secret": "secret_name"}


def _closest(key: str, known: list[str]) -> str | None:
    """The known setting `key` most likely meant (a renamed key's new name, or a near spelling)."""
    renamed = RENAMED.get(key)
    if renamed in known:
        return renamed
    near = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    return near[0] if near else None


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
