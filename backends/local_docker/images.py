"""Which image each step runs in, and making sure every one of them can run it before any does.

A step runs in its own `image`, else the target's `image` setting, else the image pipec builds
from `base_image` (`build`). Before a run starts, `prepare` looks every image up on the engine,
builds the one pipec builds when its inputs changed, and probes each image once (a throwaway
container: Python >= 3.11, and pipec's step runtime where steps run), so a bad image is one
line naming it and nothing has run. Probe results are kept by image id in the project's
`.pipec/docker-images.json` (an id names exact content, so a result never goes stale).

The run's plan then names images exactly: a user image by its id (so re-tagging `:latest` is a
cache miss), the built image by its content-hash tag. That is what cache keys and `--resume` see.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipec.backends.images import build
from pipec.backends.images.engine import Engine, EngineError
from pipec.backends.images.probe import PROBE_FILE, Probes, base_image_id
from pipec.backends.runner import plan as plans
from pipec.backends.runner.runs import state_dir
from pipec.backends.runtime.invocation import CODE_ROOT
from pipec.backends.settings import SettingsError

PULL_OR_LOAD = "pull it (`docker pull {0}`), load it (`docker load -i FILE`) or build it"


@dataclass
class ImageUse:
    """One image of a run: what is shown, what containers run, and whether it was built."""

    name: str
    ref: str
    steps: list[str] = field(default_factory=list)
    origin: str = ""
    built_seconds: float | None = None
    built_here: bool = False

    def line(self) -> str:
        """`image NAME (ORIGIN): built in 12.30s` or `...: reused`."""
        how = f"built in {self.built_seconds:.2f}s" if self.built_here else "reused"
        if not self.built_here and self.origin.startswith("built"):
            how = "reused (its inputs did not change)"
        origin = f" ({self.origin})" if self.origin else ""
        return f"image {self.name}{origin}: {how}"

    def to_json(self) -> dict[str, Any]:
        """For `--json`."""
        return {
            "image": self.name,
            "origin": self.origin,
            "steps": self.steps,
            "built": self.built_here,
            "build_seconds": None if self.built_seconds is None else round(self.built_seconds, 3),
        }


@dataclass(frozen=True)
class ImageSettings:
    """The settings that choose and build images (see `LocalDockerSettings`)."""

    image: str | None
    base_image: str | None
    python: str
    requirements: str | list[str] | None
    bake: bool
    code_root: str | None
    network: str | None


def step_images(plan: plans.Plan, image: str | None) -> dict[str, str | None]:
    """Step id -> the image it names (its own, else the target's); None: the built image."""
    return {step_id: step.image or image for step_id, step in plan.steps.items()}


def needs_build(plan: plans.Plan, settings: ImageSettings) -> bool:
    """Whether some step runs in the image pipec builds; SettingsError when it has nothing to
    build from."""
    bare = sorted(s for s, image in step_images(plan, settings.image).items() if image is None)
    if bare and not settings.base_image:
        shown = ", ".join(bare[:5]) + (", ..." if len(bare) > 5 else "")
        raise SettingsError(
            f"target 'local_docker' needs an image for step{'s' if len(bare) > 1 else ''} "
            f"{shown}: set `base_image` (pipec builds the step image from it) or `image` in "
            "[tool.pipec.targets.local_docker] or with --set, or give the step its own image"
        )
    return bool(bare)


def recipe_of(plan: plans.Plan, settings: ImageSettings, project_root: Path) -> build.Recipe:
    """The recipe of the image pipec builds for this plan."""
    assert settings.base_image is not None  # needs_build checked it
    modules = sorted({s.component.module for s in plan.steps.values()})
    return build.recipe(
        settings.base_image,
        settings.python,
        settings.requirements,
        project_root,
        modules if settings.bake else None,
    )


def prepare(
    plan: plans.Plan,
    settings: ImageSettings,
    engine: Engine,
    project_root: Path,
    say: Callable[[str], None],
) -> tuple[plans.Plan, list[ImageUse]]:
    """Every image of the run, ready (see the module docstring): the plan with exact image
    references, and one `ImageUse` per image."""
    probes = Probes(engine, settings.python, state_dir(project_root) / PROBE_FILE)
    named = step_images(plan, settings.image)
    uses: dict[str | None, ImageUse] = {}
    for step_id, image in sorted(named.items()):
        if image not in uses:
            uses[image] = _use(image, plan, settings, engine, project_root, probes, say)
        uses[image].steps.append(step_id)
    probes.save()
    refs = {step_id: uses[image].ref for step_id, image in named.items()}
    default = uses[settings.image].ref if settings.image in uses else None
    code_root = settings.code_root or (build.CODE if settings.bake else None)
    return _with_images(plan, refs, default, code_root), list(uses.values())


def _use(
    image: str | None,
    plan: plans.Plan,
    settings: ImageSettings,
    engine: Engine,
    project_root: Path,
    probes: Probes,
    say: Callable[[str], None],
) -> ImageUse:
    if image is not None:
        image_id = engine.image_id(image)
        if image_id is None:
            users = sorted(s for s, i in step_images(plan, settings.image).items() if i == image)
            raise EngineError(
                f"image {image!r} (step{'s' if len(users) > 1 else ''} {', '.join(users)}) is "
                f"not on this Docker engine: {PULL_OR_LOAD.format(image)}"
            )
        probes.check(image, image_id, runtime=True)
        origin = "a step's image" if image != settings.image else "the image setting"
        return ImageUse(image, image_id, origin=origin)
    recipe = recipe_of(plan, settings, project_root)
    base = recipe.base_image
    base_id = base_image_id(engine, base)
    built = build.ensure(
        recipe, engine, base_id, lambda: probes.check(base, base_id, runtime=False), say
    )
    probes.check(built.tag, engine.image_id(built.tag) or built.tag, runtime=True)
    return ImageUse(
        built.tag,
        built.tag,
        origin=f"built from {base}" + (", code baked in" if settings.bake else ""),
        built_seconds=built.seconds,
        built_here=built.seconds is not None,
    )


def _with_images(
    plan: plans.Plan, refs: dict[str, str], default: str | None, code_root: str | None
) -> plans.Plan:
    """A copy of `plan` whose steps name their exact image (and, when the code is baked in,
    import it from the image)."""
    data = plan.model_dump(mode="json")
    data["settings"]["image"] = default
    for step_id, ref in refs.items():
        node = data["nodes"][step_id]
        node["image"] = ref
        args = node["runtime_args"]
        if code_root is not None and CODE_ROOT in args:
            args[args.index(CODE_ROOT) + 1] = code_root
    return plans.Plan.model_validate(data)
