"""`pipec build` for one pipeline on one container target, and what `pipec compile` takes from it.

A container target builds when its `image` setting is unset and `base_image` is set: the image is
the one local_docker builds before a run (`build.Recipe`: pipec's runtime, the requirements, and
here always the code of the modules the steps import, at `code_root`), tagged with the content
hash of its inputs, so a build whose inputs did not change builds nothing. With a `registry`,
the image is also tagged `REGISTRY/PIPELINE:HASH`, and `--push` pushes it and records it by the
digest the registry answered. `pipec.lock` (`lock`) keeps the reference for compile:
`with_locked_image` gives compile a backend whose `image` is that reference, after checking that
nothing the image was built from has changed since.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipec.backends.base import Backend
from pipec.backends.images import build, lock
from pipec.backends.settings import ContainerSettings, SettingsError
from pipec.ir import graph
from pipec.ir.model import Pipeline


@dataclass(frozen=True)
class BuildOutcome:
    """What `pipec build` did for one target."""

    target: str
    ref: str
    """What compile names: `...@sha256:...` once pushed, else a content-hash tag."""
    built: bool
    """False: the image's inputs did not change, nothing was built."""
    pushed: bool
    lock_changed: bool


def builds(backend: Backend[Any], pipeline: Pipeline) -> bool:
    """Whether `pipec build` makes the image of some step of `pipeline` on this target: a
    container target with `image` unset, `base_image` set, and a step without its own image."""
    settings = backend.settings
    return (
        isinstance(settings, ContainerSettings)
        and settings.image is None
        and settings.base_image is not None
        and any(step.image is None for step in graph.steps(pipeline))
    )


def recipe_for(backend: Backend[Any], pipeline: Pipeline) -> build.Recipe:
    """The recipe of the target's step image for `pipeline` (the code baked in at `code_root`,
    except on local_docker with `code = "mount"`)."""
    settings = backend.settings
    assert isinstance(settings, ContainerSettings) and settings.base_image is not None
    bake = getattr(settings, "code", "bake") == "bake"
    by_name = {component.id: component for component in pipeline.components}
    modules = sorted({by_name[step.component].module for step in graph.steps(pipeline)})
    # local_docker bakes at its own folder (its `code_root` is where it imports from).
    code_dir = build.CODE if backend.builds_images else settings.code_root or build.CODE
    return build.recipe(
        settings.base_image,
        settings.python,
        settings.requirements,
        backend.project_root,
        modules if bake else None,
        code_dir,
        backend.image_extras,
    )


def build_image(
    backend: Backend[Any], pipeline: Pipeline, push: bool, say: Callable[[str], None]
) -> BuildOutcome:
    """Build (when its inputs changed), tag, push when asked, and record in `pipec.lock`."""
    from pipec.backends.images.engine import connect
    from pipec.backends.images.probe import PROBE_FILE, Probes, base_image_id
    from pipec.backends.runner.runs import state_dir

    settings = backend.settings
    _check_buildable(backend, pipeline, push)
    assert isinstance(settings, ContainerSettings) and settings.base_image is not None
    recipe = recipe_for(backend, pipeline)
    engine = connect()
    try:
        base_id = base_image_id(engine, settings.base_image)
        probes = Probes(engine, settings.python, state_dir(backend.project_root) / PROBE_FILE)
        built = build.ensure(
            recipe,
            engine,
            base_id,
            lambda: probes.check(recipe.base_image, base_id, runtime=False),
            say,
        )
        probes.check(built.tag, engine.image_id(built.tag) or built.tag, runtime=True)
        probes.save()
        if built.seconds is None:
            say(f"image {built.tag}: up to date (its inputs did not change); nothing built")
        else:
            say(f"image {built.tag}: built in {built.seconds:.2f}s")
        ref = tag = built.tag
        if settings.registry is not None:
            content_hash = built.tag.split(":")[1]
            tag = f"{settings.registry.rstrip('/')}/{repository(pipeline.id)}:{content_hash}"
            engine.tag(built.tag, tag)
            ref = tag
            if push:
                digest = engine.push(tag)
                ref = f"{tag.rpartition(':')[0]}@{digest}"
                say(f"pushed {tag} ({digest})")
            else:
                say(f"tagged {tag}, not pushed (--push pushes it; compile then names its digest)")
    finally:
        engine.close()
    changed = False
    if not backend.builds_images:
        entry = lock.LockedImage(ref, tag, recipe.source_inputs())
        changed = lock.record(backend.project_root, backend.name, pipeline.id, entry)
        state = "updated" if changed else "unchanged"
        say(f"{lock.LOCK_FILE} {state}: {backend.name} compiles {pipeline.id!r} with {ref}")
    pushed = push and settings.registry is not None
    return BuildOutcome(backend.name, ref, built.seconds is not None, pushed, changed)


def with_locked_image(backend: Backend[Any], pipeline: Pipeline, ref: str) -> Backend[Any]:
    """The backend compile uses: when `pipec build` makes this target's image, one whose `image`
    is the reference `pipec.lock` records; SettingsError when there is none, or when an input of
    the image changed since it was built (`ref` is the REF to name in the advice)."""
    if backend.builds_images or not builds(backend, pipeline):
        return backend
    settings = backend.settings
    assert isinstance(settings, ContainerSettings)
    push = " --push" if settings.registry else ""
    again = f"run `pipec build {ref} --target {backend.name}{push}`"
    entry = lock.read(backend.project_root).get(backend.name, {}).get(pipeline.id)
    if entry is None:
        raise SettingsError(
            f"target {backend.name!r} builds its step image from base_image "
            f"{settings.base_image!r}, but {lock.LOCK_FILE} has no image for pipeline "
            f"{pipeline.id!r} on it: {again} first (or set `image`)"
        )
    changed = lock.changed(entry, recipe_for(backend, pipeline).source_inputs())
    if changed:
        raise SettingsError(
            f"{lock.LOCK_FILE}: the image of pipeline {pipeline.id!r} on target {backend.name!r} "
            f"({entry.ref}) was built before its {', '.join(changed)} changed, so it would run "
            f"what it was built with: {again} again"
        )
    locked = settings.model_copy(update={"image": entry.ref})
    return type(backend)(locked, backend.project_root)


def repository(pipeline_id: str) -> str:
    """A pipeline id as a registry repository name (lowercase letters, digits, `.`, `_`, `-`)."""
    name = re.sub(r"[^a-z0-9._-]+", "-", pipeline_id.lower()).strip("._-")
    return name or "pipeline"


def _check_buildable(backend: Backend[Any], pipeline: Pipeline, push: bool) -> None:
    settings = backend.settings
    section = f"[tool.pipec.targets.{backend.name}] or --set"
    if not isinstance(settings, ContainerSettings):
        raise SettingsError(
            f"target {backend.name!r} runs no containers, so there is no image to build: "
            "choose a container target (kubeflow, vertex, airflow, github, local_docker)"
        )
    if settings.image is not None:
        raise SettingsError(
            f"target {backend.name!r} names its step image (image = {settings.image!r}), so "
            f"pipec builds none: unset `image` and set `base_image` in {section}"
        )
    if settings.base_image is None:
        raise SettingsError(
            f"target {backend.name!r} has no `base_image` to build the step image from: set "
            f"one (a local image with Python >= 3.11) in {section}"
        )
    if not builds(backend, pipeline):
        raise SettingsError(
            f"every step of pipeline {pipeline.id!r} names its own image: nothing to build"
        )
    if push and settings.registry is None:
        raise SettingsError(
            f"--push needs a registry to push to: set `registry` (e.g. 127.0.0.1:5000/team) in "
            f"{section}"
        )
