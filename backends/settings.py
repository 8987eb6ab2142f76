"""Target settings: `[tool.pipec.targets.<target>]` in pyproject.toml, overridden by `--set`.

Each target has one pydantic model; the models share their common parts by inheritance, so one
concept has one name on every target that has it:

* `TargetSettings`: the base (frozen, unknown keys are an error);
* `ContainerSettings`: targets that run steps in containers (`image`, `artifact_root`, `python`,
  `code_root`, and `base_image`, `requirements`, `registry` for `pipec build`);
* `KubernetesSettings`: targets whose steps are Kubernetes pods (`secret_name` and the GPU
  placement settings), rendered by `pipec.backends.common.k8s`.

A key a target does not know is an error that lists the known keys, and names the closest one
when there is one (a renamed setting, such as airflow's old `kubernetes_secret`, points at its
new name).
"""

from __future__ import annotations

import ast
import dataclasses
import datetime
import difflib
import functools
import inspect
import itertools
import textwrap
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticUndefined, to_jsonable_python

from pipec.ir import graph
from pipec.ir.diagnostics import InvalidInput
from pipec.ir.model import Pipeline


class TargetSettings(BaseModel):
    """Base of a target's settings (`[tool.pipec.targets.<name>]` and `--set key=value`).

    `fuse` is every target's: run chains of compatible steps as one task (`pipec.backends
    .lowerings.fuse`); None leaves it to the target (`Backend.fuse_by_default`: on where a task is
    expensive to start).
    """

    # Each field's description is the docstring written under it, read from the source only when
    # a command shows it (`describe`, `pipec targets`): pydantic's `use_attribute_docstrings`
    # would parse every settings module's source at each start of pipec.
    model_config = ConfigDict(frozen=True, extra="forbid")

    required_settings: ClassVar[frozenset[str]] = frozenset()
    """Settings with no default that the target's compile cannot do without (checked by the
    target itself, so that it can name every missing one at once)."""

    fuse: bool | None = None
    """Run chains of steps as one task (unset: the target's default; `pipec targets` shows it,
    `pipec explain` what it fuses)."""
    unsupported: Literal["error", "warn"] = "error"
    """What a feature the target cannot express is: `error` (U001), or `warn`: an option that does
    not change what the pipeline computes (timeout, retries, cache, resources, disk, gpu, secrets,
    env, image, a loop's parallelism, the schedule), and one option a target's own check refuses
    (a GPU model on Docker, a disk over Vertex's boot disk, ...), is dropped from the step, loop or
    pipeline with a warning naming both (W005); conditions, loops, fan-in, nested pipelines,
    ordering, artifacts and what a target refuses about a shape, name or value stay errors."""


class ContainerSettings(TargetSettings):
    """Settings shared by every target that runs steps in containers. A target may change a
    default (the KFP family puts the code in `/app`)."""

    image: str | None = None
    """The default step image (a step's own `image` wins); it must hold pipec, the project's
    dependencies and its code (at `code_root`)."""
    artifact_root: str | None = None
    """Where step outputs live: a folder every step can reach, or an fsspec URL."""
    python: str = Field(default="python3", min_length=1)
    """The interpreter that runs the step runtime in the image."""
    code_root: str | None = None
    """The folder the step modules import from (None: the image's working directory)."""
    base_image: str | None = None
    """With `image` unset: a local image with Python >= 3.11 that `pipec build` builds the step
    image from (pipec's runtime, the requirements and the steps' code added); compile then uses
    the image `pipec.lock` records."""
    requirements: str | list[str] | None = None
    """What `pipec build` installs besides pipec: a requirements file (relative to the project
    root), a list of requirements, or unset for the project's `[project] dependencies`."""
    registry: str | None = None
    """Where `pipec build --push` pushes the built image (`host:port/path`, e.g.
    `127.0.0.1:5000/team`); compile then names it by digest (`...@sha256:...`)."""

    @field_validator("image", "artifact_root", "python", "code_root", "base_image", "registry")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        # A blank value would be written into the engine's files as is (`image: " "`).
        if value is not None and not value.strip():
            raise ValueError("must not be blank (leave the setting out instead)")
        return value


class KubernetesSettings(ContainerSettings):
    """Settings of every target whose steps run as Kubernetes pods. How these become a pod, and
    why (the resource policy), is `pipec.backends.common.k8s`."""

    secret_name: str = "pipec-secrets"
    """The Kubernetes Secret whose keys (named like a step's secrets) become the step's
    environment variables."""
    gpu_resource: str = "nvidia.com/gpu"
    """The extended resource a GPU step asks for (as a limit)."""
    gpu_node_label: str = "cloud.google.com/gke-accelerator"
    """The node label a GPU step's `gpu_type` must equal."""
    gpu_toleration: str | None = "nvidia.com/gpu"
    """The taint GPU steps tolerate (GPU node pools are usually tainted; None tolerates
    nothing)."""


@dataclasses.dataclass(frozen=True)
class SettingInfo:
    """One setting as `pipec targets TARGET` shows it."""

    name: str
    type: str
    default: Any  # JSON-compatible; None when the setting is unset by default
    required: bool
    description: str


def describe(model: type[TargetSettings]) -> list[SettingInfo]:
    """Every setting of a target, sorted by name. A field a subclass only re-defaults keeps the
    description of the class that introduced it (a target states only its differences)."""
    found = []
    for name, field in sorted(model.model_fields.items()):
        description = field.description or next(
            (
                doc
                for base in model.__mro__
                if isinstance(base, type)
                and issubclass(base, BaseModel)
                and (doc := attribute_docs(base).get(name))
            ),
            "",
        )
        if field.default_factory is not None:
            default = field.default_factory()  # type: ignore[call-arg]
        else:
            default = None if field.default is PydanticUndefined else field.default
        found.append(
            SettingInfo(
                name=name,
                type=type_name(field.annotation),
                default=to_jsonable_python(default),
                required=field.is_required() or name in model.required_settings,
                description=" ".join(description.split()),
            )
        )
    return found


@functools.cache
def attribute_docs(cls: type) -> dict[str, str]:
    """The docstrings written under the attributes a class body annotates itself (empty when
    its source cannot be read)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for statement, following in itertools.pairwise(body):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = inspect.cleandoc(following.value.value)
    return docs


def type_name(annotation: Any) -> str:
    """A setting's type in the words of the TOML a user writes (`text`, `number`, `a | b`)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        shown = [type_name(a) for a in args if a is not type(None)]
        return " | ".join(shown)  # None is "unset", shown as the default
    if origin is dict:
        return f"table of {type_name(args[1])}" if args else "table"
    if origin is list:
        return f"list of {type_name(args[0])}" if args else "list"
    simple = {
        str: "text",
        int: "integer",
        float: "number",
        bool: "true | false",
        datetime.date: "date",
    }
    return simple.get(annotation, getattr(annotation, "__name__", str(annotation)))


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
            "its own image (or set `base_image` and run `pipec build`)"
        )
