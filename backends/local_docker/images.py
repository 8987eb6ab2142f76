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

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipec.backends.local_docker import build
from pipec.backends.local_docker.engine import Engine, EngineError
from pipec.backends.runner import plan as plans
from pipec.backends.runner.runs import state_dir
from pipec.backends.runtime.invocation import CODE_ROOT
from pipec.backends.settings import SettingsError

PROBE_FILE = "docker-images.json"
MIN_PYTHON = (3, 11)
PROBE = """\
import json, platform, sys
found = {"python": list(sys.version_info[:3]), "machine": platform.machine(),
         "libc": list(platform.libc_ver())}
if sys.version_info >= (3, 11):
    try:
        import pipec.backends.runtime
        found["runtime"] = True
    except Exception as exc:
        found["runtime"] = type(exc).__name__ + ": " + str(exc)
print("PIPEC-PROBE " + json.dumps(found))
"""
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
    probes = _Probes(engine, settings, state_dir(project_root) / PROBE_FILE)
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
    probes: _Probes,
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
    base_id = engine.image_id(base)
    if base_id is None:
        raise EngineError(
            f"base image {base!r} is not on this Docker engine: build one (`docker build -t "
            f"{base} DIR`; any image with Python >= 3.11) or load one (`docker load -i FILE`)"
        )
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


class _Probes:
    """Probe results by image id, read from and written back to the project's state folder."""

    def __init__(self, engine: Engine, settings: ImageSettings, path: Path) -> None:
        self.engine = engine
        self.settings = settings
        self.path = path
        try:
            self.known: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.known = {}
        self.changed = False

    def check(self, name: str, image_id: str, runtime: bool) -> build.PythonTarget:
        """The image's Python; EngineError naming the image when it cannot run steps."""
        key = f"{self.settings.python}@{image_id}"
        found = self.known.get(key)
        if not isinstance(found, dict) or "python" not in found or "machine" not in found:
            found = self._probe(name)
            self.known[key] = found
            self.changed = True
        version = tuple(found["python"])
        if version < MIN_PYTHON:
            raise EngineError(
                f"image {name!r} has Python {'.'.join(map(str, version))}; pipec's steps need "
                "Python >= 3.11 (use another image, or set `python` to its newer interpreter)"
            )
        if runtime and found.get("runtime") is not True:
            raise EngineError(
                f"image {name!r} does not have pipec's step runtime (`import "
                f"pipec.backends.runtime` failed: {found.get('runtime')}): install pipec in it, "
                "or leave `image` unset and set `base_image` so pipec builds the step image"
            )
        libc = found.get("libc") or ["", ""]
        return build.PythonTarget(
            (int(version[0]), int(version[1])), str(found["machine"]), (libc[0], libc[1])
        )

    def _probe(self, name: str) -> dict[str, Any]:
        python = self.settings.python
        code, output = self.engine.run_once(name, [python, "-c", PROBE], "none")
        for line in output.splitlines():
            if line.startswith("PIPEC-PROBE "):
                found: dict[str, Any] = json.loads(line.removeprefix("PIPEC-PROBE "))
                return found
        why = output.strip().splitlines()[-1] if output.strip() else f"exit code {code}"
        raise EngineError(
            f"image {name!r} cannot run `{python}` (the `python` setting): {why}; pipec's steps "
            "need Python >= 3.11 in the image"
        )

    def save(self) -> None:
        if not self.changed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{time.time_ns()}")
        temporary.write_text(json.dumps(self.known, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temporary, self.path)


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
