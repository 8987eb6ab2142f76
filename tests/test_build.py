"""`pipec build`: the step image of a container target, pushed to a real registry, named by digest
in the kubeflow compile; `pipec.lock` read by compile (missing, stale, unchanged).

The registry is Debian's `docker-registry` (the CNCF distribution registry, the same server as
the `registry:2` image), started by the test on 127.0.0.1 with its filesystem storage in a
temporary folder and no authentication; what it answers about a manifest is checked over its own
HTTP API, so a push that did not arrive fails the test. TLS and authentication are not exercised.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipec import driver
from pipec.backends.images import lock
from pipec.backends.images.pipeline import recipe_for
from pipec.backends.settings import SettingsError
from tests.local_helpers import make_project, pipec
from tests.registry_helpers import free_port, manifest_digest, serve_registry
from tests.test_local_docker import BASE, ONE_STEP, engine_ready, one_line_exit_2


def _project(root: Path, registry: str | None = None) -> str:
    """A one-step project whose kubeflow section builds from pipec-base."""
    ref = make_project(root, ONE_STEP)
    section = f'\n[tool.pipec.targets.kubeflow]\nbase_image = "{BASE}"\n'
    if registry is not None:
        section += f'registry = "{registry}"\n'
    with (root / "pyproject.toml").open("a", encoding="utf-8") as handle:
        handle.write(section)
    return ref


def _fails_with(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 2 after progress lines: one error line, the last, and no traceback."""
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and done.stderr.rstrip().endswith(errors[0]), done.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


# ------------------------------------------------------------- compile and the lock (no Docker)


def test_compile_without_a_build_says_to_build(tmp_path: Path) -> None:
    ref = _project(tmp_path)
    done = pipec(tmp_path, "compile", ref, "--target", "kubeflow", "-o", "out")
    line = one_line_exit_2(done, "pipec.lock has no image for pipeline 'single'")
    assert f"pipec build {ref} --target kubeflow" in line
    # Commands that only show the pipeline need no image.
    shown = pipec(tmp_path, "explain", ref, "--target", "kubeflow")
    assert shown.returncode == 0, shown.stderr


def _lock_as_built(root: Path, ref: str, image: str) -> None:
    pipeline, backend = driver.prepare_build(str(root / ref), "kubeflow")
    inputs = recipe_for(backend, pipeline).source_inputs()
    lock.record(root, "kubeflow", pipeline.id, lock.LockedImage(image, image, inputs))


def test_compile_names_the_locked_image_and_stops_on_a_stale_one(tmp_path: Path) -> None:
    ref = _project(tmp_path)
    digest_ref = "127.0.0.1:5000/team/single@sha256:" + "a" * 64
    _lock_as_built(tmp_path, ref, digest_ref)
    first = pipec(tmp_path, "compile", ref, "--target", "kubeflow", "-o", "one")
    second = pipec(tmp_path, "compile", ref, "--target", "kubeflow", "-o", "two")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    spec = (tmp_path / "one" / "pipeline.yaml").read_bytes()
    assert spec == (tmp_path / "two" / "pipeline.yaml").read_bytes()
    assert f'image: "{digest_ref}"'.encode() in spec
    # The code the image was built with changes: compile refuses the old image, naming why.
    module = tmp_path / ref
    module.write_text(module.read_text() + "\n# edited\n", encoding="utf-8")
    done = pipec(tmp_path, "compile", ref, "--target", "kubeflow", "-o", "three")
    one_line_exit_2(done, "was built before its code changed", "pipec build")
    assert not (tmp_path / "three").exists()
    # An explicit image wins over the lock (and needs no build).
    explicit = pipec(tmp_path, "compile", ref, "-t", "kubeflow", "--set", "image=x:1", "-o", "4")
    assert explicit.returncode == 0, explicit.stderr
    assert b"image: x:1" in (tmp_path / "4" / "pipeline.yaml").read_bytes()


def test_the_lock_is_deterministic_and_keeps_other_entries(tmp_path: Path) -> None:
    a = lock.LockedImage("r/a@sha256:1", "r/a:1", {"code": "c", "pipec": "p"})
    b = lock.LockedImage("r/b:2", "r/b:2", {"code": "d"})
    assert lock.record(tmp_path, "kubeflow", "a", a)
    assert lock.record(tmp_path, "vertex", "b", b)
    text = (tmp_path / lock.LOCK_FILE).read_text()
    assert not lock.record(tmp_path, "kubeflow", "a", a)  # unchanged: not rewritten
    assert (tmp_path / lock.LOCK_FILE).read_text() == text
    assert lock.read(tmp_path) == {"kubeflow": {"a": a}, "vertex": {"b": b}}
    assert lock.changed(a, {"code": "c2", "pipec": "p"}) == ["code"]
    (tmp_path / lock.LOCK_FILE).write_text('{"version": 9}')
    with pytest.raises(SettingsError, match="not a lock file pipec wrote"):
        lock.read(tmp_path)


def test_build_input_errors_are_one_line(tmp_path: Path) -> None:
    ref = make_project(tmp_path, ONE_STEP)
    one_line_exit_2(pipec(tmp_path, "build", ref, "-t", "local"), "runs no containers")
    one_line_exit_2(pipec(tmp_path, "build", ref, "-t", "kubeflow"), "no `base_image`")
    named = pipec(tmp_path, "build", ref, "-t", "kubeflow", "--set", "image=x:1")
    one_line_exit_2(named, "names its step image")
    unpushable = pipec(tmp_path, "build", ref, "-t", "kubeflow", "--set", f"base_image={BASE}",
                       "--push")
    one_line_exit_2(unpushable, "--push needs a registry")
    no_engine = pipec(tmp_path, "build", ref, "-t", "kubeflow", "--set", f"base_image={BASE}",
                      env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
    one_line_exit_2(no_engine, "no Docker engine answers")


# ------------------------------------------------------------- building and pushing (Docker)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A distribution registry on 127.0.0.1 (filesystem storage, no auth): its host:port."""
    yield from serve_registry(tmp_path_factory.mktemp("registry"))


@pytest.mark.docker
@pytest.mark.slow
def test_build_pushes_compile_names_the_digest_and_a_rebuild_builds_nothing(
    tmp_path: Path, registry: str
) -> None:
    engine_ready()
    ref = _project(tmp_path, f"{registry}/team")
    first = pipec(tmp_path, "build", ref, "--target", "kubeflow", "--push", timeout=1800)
    assert first.returncode == 0, first.stderr
    target, image = first.stdout.split()
    repository, _, digest = image.partition("@")
    assert target == "kubeflow" and repository == f"{registry}/team/single", first.stdout
    tag = json.loads((tmp_path / "pipec.lock").read_text())["images"]["kubeflow"]["single"]["tag"]
    assert manifest_digest(registry, "team/single", tag.rpartition(":")[2]) == digest
    compiled = pipec(tmp_path, "compile", ref, "--target", "kubeflow", "-o", "out")
    assert compiled.returncode == 0, compiled.stderr
    assert f'image: "{image}"' in (tmp_path / "out" / "pipeline.yaml").read_text()
    lock_text = (tmp_path / "pipec.lock").read_text()
    again = pipec(tmp_path, "build", ref, "--target", "kubeflow", "--push", timeout=600)
    assert again.returncode == 0, again.stderr
    assert "nothing built" in again.stderr and "building" not in again.stderr, again.stderr
    assert "pipec.lock unchanged" in again.stderr and again.stdout == first.stdout
    assert (tmp_path / "pipec.lock").read_text() == lock_text


@pytest.mark.docker
def test_an_unreachable_registry_or_base_image_is_one_line(tmp_path: Path) -> None:
    engine_ready()
    ref = _project(tmp_path, f"127.0.0.1:{free_port()}/team")
    pushed = pipec(tmp_path, "build", ref, "--target", "kubeflow", "--push", timeout=1800)
    _fails_with(pushed, "cannot push", "check that the registry runs")
    missing = pipec(tmp_path, "build", ref, "-t", "kubeflow", "--set", "base_image=no-such:1")
    one_line_exit_2(missing, "base image 'no-such:1' is not on this Docker engine")


def test_the_kubernetes_image_carries_the_client_its_in_cluster_driver_imports(
    tmp_path: Path,
) -> None:
    """The driver Job runs from the step image (driver=cluster) and imports the kubernetes
    client; the image is the same with driver=local, so switching drivers needs no rebuild.
    Other targets' images get no extra."""
    ref = make_project(tmp_path, ONE_STEP)
    with (tmp_path / "pyproject.toml").open("a", encoding="utf-8") as handle:
        handle.write(f'\n[tool.pipec.targets.kubernetes]\nbase_image = "{BASE}"\n')
    found: dict[str, list[str]] = {}
    for target, overrides in (
        ("kubernetes", ["driver=cluster"]),
        ("kubernetes", ["driver=local"]),
        ("kubeflow", [f"base_image={BASE}"]),
    ):
        pipeline, backend = driver.prepare_build(str(tmp_path / ref), target, overrides)
        lines = recipe_for(backend, pipeline).requirements.splitlines()
        found[f"{target} {overrides[0]}"] = [x for x in lines if x.startswith("kubernetes")]
    cluster, local, kubeflow = found.values()
    assert len(cluster) == 1 and ";" not in cluster[0]
    assert local == cluster
    assert kubeflow == []
