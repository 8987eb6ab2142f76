"""Docker images for runs under kfp.local: the test image `.ci/docker` builds for this tree, and a
throwaway image per run that adds the pipeline's project, so any project can run, not only the
examples baked into the test image.

The Docker daemon (and the `pipec-kfp-test` tag) is shared with other checkouts of the project, so
the base is used through a tag of its own that names this tree's content hash (the one
`.ci/docker` labels the image with), set only after the label says the image holds this tree.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import NoReturn

import pytest

from tests.conftest import REPO

BASE_TAG = "pipec-kfp-test:latest"
# The content hash .ci/docker labels the image with (run in the same shell pipeline).
_TREE_HASH = (
    "git ls-files -z pyproject.toml compiler ir backends examples | sort -z | xargs -0 cat "
    "| sha256sum | cut -d' ' -f1"
)
_IGNORED = shutil.ignore_patterns(".pipec", "__pycache__", "*.pyc", ".venv", ".venvs", ".git")


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


def _unavailable(reason: str) -> NoReturn:
    """Docker missing: a failure in CI (the test command must provide it), a skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@functools.cache
def base_image() -> str:
    """A tag of a `pipec-kfp-test` image built from this tree (built now when needed).

    The tag names the tree's content hash, so it keeps that image alive and found even when
    another checkout rebuilds `pipec-kfp-test` for its own tree."""
    if shutil.which("docker") is None and shutil.which("apt-get") is None:
        _unavailable("Docker is not installed and cannot be installed here")
    want = subprocess.run(
        ["bash", "-c", _TREE_HASH], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    pinned = f"pipec-conformance-base:{want[:16]}"
    have = ""
    for _ in range(3):  # another checkout may retag the shared image between build and tag
        if _label(pinned) == want:
            return pinned
        built = subprocess.run(
            ["bash", str(REPO / ".ci" / "docker")], capture_output=True, text=True, check=False
        )
        if built.returncode != 0:
            _unavailable(f".ci/docker failed: {built.stderr.strip()[-2000:]}")
        have = _label(BASE_TAG)
        if have == want:
            _docker("tag", BASE_TAG, pinned)
    raise AssertionError(f"{BASE_TAG} is not built from this tree (label {have!r}, want {want!r})")


def _label(image: str) -> str:
    """The `pipec.inputs` label of an image ("" when there is no such image)."""
    label = '{{index .Config.Labels "pipec.inputs"}}'
    found = _docker("image", "inspect", image, "--format", label)
    return found.stdout.strip() if found.returncode == 0 else ""


@functools.cache
def image_env(image: str) -> dict[str, str]:
    """The environment a container of `image` starts with (Docker adds HOSTNAME, and HOME when
    the image has none; HOSTNAME differs per container and is left out)."""
    found = _docker("image", "inspect", image, "--format", "{{json .Config.Env}}")
    assert found.returncode == 0, found.stderr
    env = dict(item.partition("=")[::2] for item in json.loads(found.stdout) or [])
    env.setdefault("HOME", "/root")
    return env


def project_image(project: Path, destination: str) -> str:
    """A throwaway image: the base image plus `project` copied to `destination`; its tag."""
    return throwaway_image("pipec-conformance-run", base_image(), project, destination)


def throwaway_image(
    repository: str, base: str, project: Path, destination: str, copy_flags: str = ""
) -> str:
    """`base` plus `project` at `destination`, tagged `repository:<token>`: its tag.

    The token is also a label above every other instruction, so no layer of it is shared with
    another build: tests running at the same time build the same projects, and removing one's
    image would otherwise delete cached layers (and, with its last tag, the image itself) that a
    concurrent build of the same content had just reused."""
    token = secrets.token_hex(8)
    with tempfile.TemporaryDirectory(prefix="pipec-image-") as context:
        shutil.copytree(project, Path(context) / "project", ignore=_IGNORED)
        (Path(context) / "Dockerfile").write_text(
            f"FROM {base}\nLABEL pipec.throwaway={token}\n"
            f"COPY {copy_flags}project {destination}\nWORKDIR {destination}\n",
            encoding="utf-8",
        )
        tag = f"{repository}:{token}"
        built = _docker("build", "-q", "--network", "none", "-t", tag, context)
        assert built.returncode == 0, built.stderr[-4000:]
    return tag


def remove_image(tag: str) -> None:
    """Remove a throwaway image (its containers are gone: kfp.local removes them)."""
    _docker("image", "rm", "-f", tag)
