"""The step image pipec builds from `base_image`: its recipe, its tag, and the build.

Two images, so that what changes often is cheap to rebuild:

    pipec-deps:<hash>   the base image + the requirements (pipec's and the project's), installed
                        on this machine by pip for the base image's Python and platform
    pipec-step:<hash>   the deps image + pipec itself, copied from this installation
                        (+ the project's code with `code = "bake"`)

Nothing is downloaded inside a build (`network_mode=none`): everything is prepared here. A tag is
the content hash of the image's inputs (the base image's id, the requirements, the Dockerfile,
pipec's files, the baked code), so an unchanged input set reuses the image and user code, mounted
at run time, never causes a rebuild. `Recipe.files()` is what `pipec compile` shows: the exact
Dockerfiles, the requirements and a listing of both build contexts, with no path or id of this
machine in them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipec.backends.base import Bundle
from pipec.backends.images.engine import LABEL_INPUTS, BuildError, Engine, EngineError

BUILDER = "1"
"""Part of every tag: bumped when the way images are built changes."""
DEPS_REPOSITORY = "pipec-deps"
STEP_REPOSITORY = "pipec-step"
SITE = "/opt/pipec/site"
CODE = "/opt/pipec/code"
PIPEC_PACKAGES = {"pipec": "", "pipec.ir": "ir/", "pipec.backends": "backends/"}
"""Import name -> where its files go under `pipec/` (the three trees are mapped separately in a
development install)."""


@dataclass(frozen=True)
class PythonTarget:
    """The base image's interpreter, as far as pip needs to know it."""

    version: tuple[int, int]
    machine: str
    libc: tuple[str, str]

    def pip_options(self) -> list[str]:
        """pip's `--python-version/--platform/...` for wheels that run there."""
        major, minor = self.version
        options = ["--python-version", f"{major}.{minor}", "--implementation", "cp"]
        for abi in (f"cp{major}{minor}", "abi3", "none"):
            options += ["--abi", abi]
        for platform in (*self.platforms(), "any"):
            options += ["--platform", platform]
        return options

    def platforms(self) -> list[str]:
        """Wheel platform tags this libc accepts, newest first (pip does not widen them)."""
        name, version = self.libc
        arch = self.machine
        try:
            high = int(version.split(".")[1])
        except (IndexError, ValueError):
            high = 17
        if name == "glibc":
            tags = [f"manylinux_2_{minor}_{arch}" for minor in range(high, 4, -1)]
            legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
            return tags + [f"{tag}_{arch}" for m, tag in legacy.items() if m <= high]
        if name == "musl":
            return [f"musllinux_1_{minor}_{arch}" for minor in range(high, -1, -1)]
        return [f"linux_{arch}"]


@dataclass(frozen=True)
class Recipe:
    """What goes into the step image, known before anything is built."""

    base_image: str
    python: str
    requirements: str
    """requirements.txt: pipec's dependencies, then the project's."""
    requirements_origin: str
    code: tuple[tuple[str, Path], ...] = ()
    """With `code = "bake"`: (path under code/, file here) for every file of the project's
    modules that the steps import."""
    code_dir: str = CODE
    """Where the baked code goes in the image (the working directory; the KFP family's
    `code_root`, `/app`, for images made by `pipec build`)."""

    @property
    def bake(self) -> bool:
        """Whether the project's code goes into the image."""
        return bool(self.code)

    def deps_dockerfile(self) -> str:
        """The Dockerfile of the deps image (`PIPEC_BASE` is the base image's id)."""
        return (
            "# pipec: the base image plus the steps' Python packages, installed on the host by\n"
            "# pip for the base image's Python and platform. Nothing is downloaded here.\n"
            "ARG PIPEC_BASE\n"
            "FROM ${PIPEC_BASE}\n"
            f"COPY site {SITE}\n"
            f"ENV PYTHONPATH={SITE}${{PYTHONPATH:+:$PYTHONPATH}}\n"
            f"RUN {_compile_all(self.python, SITE)}\n"
        )

    def step_dockerfile(self) -> str:
        """The Dockerfile of the step image (`PIPEC_DEPS` is the deps image)."""
        text = (
            "# pipec: the step runtime (pipec, copied from the installation that builds this\n"
            "# image) on top of the deps image.\n"
            "ARG PIPEC_DEPS\n"
            "FROM ${PIPEC_DEPS}\n"
            f"COPY pipec {SITE}/pipec\n"
            f"RUN {_compile_all(self.python, SITE + '/pipec')}\n"
        )
        if self.bake:
            text += f"COPY code {self.code_dir}\nWORKDIR {self.code_dir}\n"
        return text

    def files(self) -> Bundle:
        """What `pipec compile` writes under `image/` (deterministic: no path or id of this
        machine)."""
        return {
            "image/deps.Dockerfile": self.deps_dockerfile(),
            "image/step.Dockerfile": self.step_dockerfile(),
            "image/requirements.txt": self.requirements,
            "image/context.txt": self.listing(),
        }

    def listing(self) -> str:
        """The two build contexts, entry by entry."""
        lines = [
            "# The images pipec builds for steps without an image of their own. Everything is",
            "# prepared on this machine; nothing is downloaded inside a build. Each tag is a",
            "# content hash of the image's inputs, so an unchanged set of inputs reuses it.",
            "",
            f"{DEPS_REPOSITORY}:<hash>: deps.Dockerfile, FROM the base image {self.base_image}",
            "  deps.Dockerfile",
            "  requirements.txt      pipec's dependencies, then the project's requirements",
            f"                        ({self.requirements_origin})",
            "  site/                 pip install --target site -r requirements.txt, run here for",
            "                        the base image's Python and platform (wheels only)",
            f"{STEP_REPOSITORY}:<hash>: step.Dockerfile, FROM {DEPS_REPOSITORY}:<hash>",
            "  step.Dockerfile",
            f"  pipec/                pipec {_pipec_version()}: its step runtime and front end",
        ]
        if self.bake:
            lines.append('  code/                 the project\'s code (code = "bake"):')
            lines += [f"    {relative}" for relative, _ in self.code]
        return "\n".join(lines) + "\n"

    def deps_key(self, base_id: str) -> str:
        """The content hash of the deps image's inputs."""
        return _digest(
            {
                "builder": BUILDER,
                "base": base_id,
                "dockerfile": self.deps_dockerfile(),
                "requirements": self.requirements,
            }
        )

    def source_inputs(self) -> dict[str, str]:
        """A hash of each input this machine can see without a Docker engine: the base image by
        name (not by id), the Dockerfiles, the requirements, pipec and the baked code.
        `pipec.lock` records them, so `pipec compile` tells a stale image (and what changed)
        without Docker."""
        return {
            "base image": _digest(self.base_image),
            "Dockerfiles": _digest([BUILDER, self.deps_dockerfile(), self.step_dockerfile()]),
            "requirements": _digest(self.requirements),
            "pipec": _files_digest(pipec_files()),
            "code": _files_digest(dict(self.code)),
        }

    def step_key(self, deps_key: str) -> str:
        """The content hash of the step image's inputs."""
        return _digest(
            {
                "builder": BUILDER,
                "deps": deps_key,
                "dockerfile": self.step_dockerfile(),
                "pipec": _files_digest(pipec_files()),
                "code": _files_digest(dict(self.code)),
            }
        )


def recipe(
    base_image: str,
    python: str,
    requirements: str | list[str] | None,
    project_root: Path,
    bake_modules: list[str] | None = None,
    code_dir: str = CODE,
    extras: Sequence[str] = (),
) -> Recipe:
    """The recipe for a project: `requirements` is the setting (a file, a list, or None for
    the project's own `[project] dependencies`); `bake_modules` the steps' modules when the code
    goes into the image; `extras` pipec's extras the target runs in the image."""
    own = _pipec_requirements(extras)
    project, origin = _project_requirements(requirements, project_root)
    text = "# pipec's own dependencies\n" + "".join(f"{r}\n" for r in own)
    extra = [r for r in project if r not in own]
    # Where the project's requirements came from stays out of the file (and so out of the tag):
    # the same requirements give the same image whichever way they were given.
    text += "# the project's requirements\n" + "".join(f"{r}\n" for r in extra)
    code = _code_files(project_root, bake_modules) if bake_modules is not None else ()
    return Recipe(base_image, python, text, origin, code, code_dir)


@dataclass(frozen=True)
class Built:
    """The step image: its tag, and the seconds spent building (None: it was there)."""

    tag: str
    seconds: float | None


def ensure(
    plan: Recipe,
    engine: Engine,
    base_id: str,
    target: Callable[[], PythonTarget],
    say: Callable[[str], None],
) -> Built:
    """The step image for `plan` on base image `base_id`, built when its tag is missing.
    `target` probes the base image's Python (only called when the deps image is built)."""
    started = time.monotonic()
    deps_key = plan.deps_key(base_id)
    deps_tag = f"{DEPS_REPOSITORY}:{deps_key[:20]}"
    step_key = plan.step_key(deps_key)
    step_tag = f"{STEP_REPOSITORY}:{step_key[:20]}"
    if engine.image_id(step_tag) is not None:
        return Built(step_tag, None)
    with tempfile.TemporaryDirectory(prefix="pipec-image-") as folder:
        context = Path(folder)
        if engine.image_id(deps_tag) is None:
            python = target()
            say(
                f"building {deps_tag} from {plan.base_image} (pip for Python "
                f"{python.version[0]}.{python.version[1]} on {python.machine})"
            )
            deps = context / "deps"
            deps.mkdir()
            (deps / "deps.Dockerfile").write_text(plan.deps_dockerfile(), encoding="utf-8")
            (deps / "requirements.txt").write_text(plan.requirements, encoding="utf-8")
            _pip_install(deps / "site", deps / "requirements.txt", python)
            labels = {LABEL_INPUTS: deps_key}
            engine.build(deps, "deps.Dockerfile", deps_tag, {"PIPEC_BASE": base_id}, labels)
        say(f"building {step_tag} from {deps_tag}")
        step = context / "step"
        step.mkdir()
        (step / "step.Dockerfile").write_text(plan.step_dockerfile(), encoding="utf-8")
        _copy(pipec_files(), step / "pipec")
        _copy(dict(plan.code), step / "code")
        labels = {LABEL_INPUTS: step_key}
        engine.build(step, "step.Dockerfile", step_tag, {"PIPEC_DEPS": deps_tag}, labels)
    return Built(step_tag, time.monotonic() - started)


def pipec_files() -> dict[str, Path]:
    """pipec's own files as installed here: path under `pipec/` -> file."""
    found: dict[str, Path] = {}
    for name, prefix in PIPEC_PACKAGES.items():
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise EngineError(f"cannot find pipec's package {name} to copy into the image")
        root = Path(next(iter(spec.submodule_search_locations)))
        for relative, path in _tree(root).items():
            found[prefix + relative] = path
    return dict(sorted(found.items()))


def _tree(root: Path) -> dict[str, Path]:
    """Every file under `root` except caches and hidden files: relative path -> file."""
    files: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if any(p.startswith(".") or p == "__pycache__" for p in parts) or path.suffix == ".pyc":
            continue
        if path.is_file():
            files["/".join(parts)] = path
    return files


def _code_files(project_root: Path, modules: list[str]) -> tuple[tuple[str, Path], ...]:
    """The files of the top-level packages (or single modules) the steps import from."""
    found: dict[str, Path] = {}
    for top in sorted({m.split(".")[0] for m in modules}):
        package = project_root / top
        if package.is_dir():
            found.update({f"{top}/{rel}": path for rel, path in _tree(package).items()})
        elif (project_root / f"{top}.py").is_file():
            found[f"{top}.py"] = project_root / f"{top}.py"
    return tuple(sorted(found.items()))


def _copy(files: dict[str, Path], into: Path) -> None:
    for relative, path in files.items():
        target = into / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def _pip_install(site: Path, requirements: Path, python: PythonTarget) -> None:
    """pip (in pipec's own environment) installs the requirements into `site` for `python`."""
    command = [
        sys.executable,
        *("-m", "pip", "install", "--quiet", "--no-input", "--disable-pip-version-check"),
        *("--no-warn-script-location", "--only-binary=:all:", "--target", str(site)),
        *python.pip_options(),
        *("-r", str(requirements)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        problems = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        why = " | ".join(problems[-3:]) or done.stderr.strip()[-500:] or "pip failed"
        major, minor = python.version
        raise BuildError(
            f"cannot install the image's requirements for Python {major}.{minor} on "
            f"{python.machine} (pip in {sys.executable}, wheels only): {why}"
        )


def _compile_all(python: str, folder: str) -> str:
    """A RUN instruction that writes the bytecode of `folder` for the image's own Python
    (quietly; a file that does not compile for it is left to fail when imported)."""
    script = f"import compileall; compileall.compile_dir({folder!r}, quiet=2)"
    return json.dumps([python, "-c", script])


def _pipec_requirements(extras: Sequence[str] = ()) -> list[str]:
    """pipec's own dependencies, and those of the given extras (the step runtime needs no
    extra; a target's in-image code may), without their markers."""
    try:
        declared = importlib.metadata.requires("pipec") or []
    except importlib.metadata.PackageNotFoundError:
        declared = []
    wanted = {_normal_extra(e) for e in extras}
    found: list[str] = []
    for line in declared:
        requirement, _, marker = line.partition(";")
        extra = EXTRA_MARKER.search(marker)
        if extra is None:  # a dependency of pipec itself (with its own marker, if any)
            kept = line.strip()
        elif _normal_extra(extra[1]) in wanted:
            kept = requirement.strip()
        else:
            continue
        if kept not in found:
            found.append(kept)
    return found


# A requirement of an extra as importlib.metadata spells it: `pkg>=1; extra == "name"`.
EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def _normal_extra(name: str) -> str:
    """Extras compare by their normalized names (PEP 685: `local_docker` is `local-docker`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _project_requirements(
    setting: str | list[str] | None, project_root: Path
) -> tuple[list[str], str]:
    """The project's requirement lines and where they come from."""
    if isinstance(setting, list):
        return list(setting), "the requirements setting"
    if isinstance(setting, str):
        path = project_root / setting
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise EngineError(
                f"requirements file {setting!r} cannot be read ({exc.strerror}): give a file "
                "relative to the project root, or a list of requirements"
            ) from None
        lines = [line.split(" #")[0].strip() for line in text.splitlines()]
        return [line for line in lines if line and not line.startswith("#")], setting
    pyproject = project_root / "pyproject.toml"
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        data = {}
    project = data.get("project", {})
    declared = project.get("dependencies", []) if isinstance(project, dict) else []
    return [str(r) for r in declared], "pyproject.toml [project] dependencies"


def _pipec_version() -> str:
    try:
        return importlib.metadata.version("pipec")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed as a distribution)"


def _digest(data: object) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _files_digest(files: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    for relative, path in sorted(files.items()):
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
