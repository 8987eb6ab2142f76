"""The local_docker target without running steps: what it compiles, what it refuses, and the bad
input a run stops at before anything runs (no engine, no SDK, unusable images).

The helpers at the top (`engine_ready`, `build_image`, ...) are shared with
`test_local_docker_run.py`, whose tests run real containers.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipec import driver
from pipec.backends.images import build
from pipec.backends.images.engine import Engine, EngineError, connect
from pipec.backends.local_docker import LocalDockerBackend
from pipec.backends.local_docker.streams import Masker
from pipec.backends.settings import SettingsError
from pipec.ir.diagnostics import DiagnosticError
from tests.conftest import REPO
from tests.local_helpers import make_project, pipec

BASE = "pipec-base"
"""Debian minbase + python3, built with debootstrap by `.ci/docker`."""
QUIET = ("--view", "quiet")
ON_BASE = ("--target", "local_docker", "--set", f"base_image={BASE}", "--set", "network=none")

ONE_STEP = """
@step
def one() -> int:
    return 1

@pipeline
def single() -> None:
    one()
"""


# ------------------------------------------------------------------------------ shared helpers


def engine_ready() -> Engine:
    """The local engine with `pipec-base`, started and built by `.ci/docker` when missing; skip
    (fail in CI) when that cannot be had."""
    try:
        engine = connect()
        if engine.image_id(BASE) is not None:
            return engine
    except EngineError:
        pass
    reason = "Docker is not installed and cannot be installed here"
    if shutil.which("docker") is not None or shutil.which("apt-get") is not None:
        done = subprocess.run(
            ["bash", str(REPO / ".ci" / "docker")], capture_output=True, text=True, check=False
        )
        if done.returncode == 0:
            return connect()
        reason = f".ci/docker failed: {done.stderr.strip()[-2000:]}"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def build_image(engine: Engine, tag: str, dockerfile: str, files: dict[str, str]) -> None:
    """Build a small image for a test from a Dockerfile and files (no network)."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, text in {"Dockerfile": dockerfile, **files}.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    for _ in engine.api.build(
        fileobj=context, custom_context=True, tag=tag, network_mode="none", rm=True, decode=True
    ):
        pass
    assert engine.image_id(tag) is not None, f"could not build {tag}"


def run_containers(engine: Engine, run_id: str, running_only: bool = False) -> list[str]:
    """Containers labelled with run `run_id` (all, or only the running ones)."""
    found = engine.api.containers(all=not running_only, filters={"label": f"pipec.run={run_id}"})
    return [str(c["Id"]) for c in found]


def runs_recorded(root: Path) -> int:
    """How many runs the project's metadata store holds."""
    db = root / ".pipec" / "metadata.db"
    if not db.exists():
        return 0
    return int(sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs").fetchone()[0])


def one_line_exit_2(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The run stopped as bad input: exit 2, one line, no traceback; return the line."""
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------------------------- compile


def test_compile_writes_the_plan_and_the_image_recipe(tmp_path: Path) -> None:
    ref = make_project(tmp_path, ONE_STEP)
    bundle = driver.compile_ref(str(tmp_path / ref), "local_docker", [f"base_image={BASE}"])
    assert sorted(bundle) == [
        "image/context.txt",
        "image/deps.Dockerfile",
        "image/requirements.txt",
        "image/step.Dockerfile",
        "plan.json",
    ]
    plan = json.loads(bundle["plan.json"])
    assert plan["nodes"]["one"]["image"] is None  # the built image, named once it exists
    assert "FROM ${PIPEC_BASE}" in bundle["image/deps.Dockerfile"]
    assert f"FROM the base image {BASE}" in bundle["image/context.txt"]
    assert bundle["image/requirements.txt"].splitlines()[1].startswith("pydantic")
    for name, text in bundle.items():
        assert str(tmp_path) not in text
        assert name == "plan.json" or "sha256:" not in text  # no image id of this machine


def test_an_image_setting_builds_nothing(tmp_path: Path) -> None:
    ref = make_project(tmp_path, ONE_STEP)
    bundle = driver.compile_ref(str(tmp_path / ref), "local_docker", ["image=team/steps:1"])
    assert sorted(bundle) == ["plan.json"]
    assert json.loads(bundle["plan.json"])["settings"]["image"] == "team/steps:1"


def test_requirements_from_a_file_a_list_or_the_project(tmp_path: Path) -> None:
    ref = make_project(tmp_path, ONE_STEP)
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "t"\ndependencies = ["numpy>=1.26", "pydantic<3,>=2.7"]\n'
    )
    (tmp_path / "reqs.txt").write_text("# pinned\npandas==2.2.2  # data\n\nrequests\n")

    def requirements(*settings: str) -> list[str]:
        over = [f"base_image={BASE}", *settings]
        text = driver.compile_ref(str(tmp_path / ref), "local_docker", over)
        return text["image/requirements.txt"].split("# the project's requirements\n")[1].split()

    assert requirements() == ["numpy>=1.26"]  # pipec's own pydantic is not repeated
    assert requirements("requirements=reqs.txt") == ["pandas==2.2.2", "requests"]
    assert requirements('requirements=["scikit-learn>=1.4"]') == ["scikit-learn>=1.4"]
    with pytest.raises(EngineError, match=r"requirements file 'nope\.txt' cannot be read"):
        requirements("requirements=nope.txt")


def test_bake_lists_the_code_it_copies(tmp_path: Path) -> None:
    ref = make_project(tmp_path, ONE_STEP)
    over = [f"base_image={BASE}", "code=bake"]
    bundle = driver.compile_ref(str(tmp_path / ref), "local_docker", over)
    assert f"    {ref}\n" in bundle["image/context.txt"]
    assert "COPY code /opt/pipec/code" in bundle["image/step.Dockerfile"]
    plan = json.loads(bundle["plan.json"])
    args = plan["nodes"]["one"]["runtime_args"]
    assert args[args.index("--code-root") + 1] == "{project_root}"  # set when the run starts


def test_no_image_and_no_base_image_is_one_error(tmp_path: Path) -> None:
    ref = make_project(tmp_path, ONE_STEP)
    with pytest.raises(SettingsError, match="set `base_image`") as caught:
        driver.compile_ref(str(tmp_path / ref), "local_docker")
    assert "step one" in str(caught.value)


def _train_with(tmp_path: Path, resources: str) -> str:
    return make_project(
        tmp_path,
        f"""
        @step(resources=Resources({resources}))
        def train() -> int:
            return 1

        @pipeline
        def gpus() -> None:
            train()
        """,
    )


def test_a_gpu_type_has_no_docker_form(tmp_path: Path) -> None:
    ref = _train_with(tmp_path, 'gpu=1, gpu_type="nvidia-l4"')
    with pytest.raises(DiagnosticError) as caught:
        driver.compile_ref(str(tmp_path / ref), "local_docker", [f"base_image={BASE}"])
    [found] = caught.value.diagnostics
    assert found.code == "U001"
    assert found.message == (
        "target 'local_docker' cannot express a GPU type (Docker requests GPUs by count only) "
        "(used by 'train')"
    )


def test_a_disk_request_compiles_and_is_not_reserved_as_on_local(tmp_path: Path) -> None:
    """Docker reserves no disk; the steps share this machine's, as `local` says for its own."""
    ref = _train_with(tmp_path, 'disk="10Gi"')
    compiled = driver.compile_ref(str(tmp_path / ref), "local_docker", [f"base_image={BASE}"])
    assert "plan.json" in compiled
    note = LocalDockerBackend.notes["disk"]
    assert note.startswith("not reserved") and note.endswith("as on local")


def test_compiling_never_imports_the_docker_sdk(tmp_path: Path) -> None:
    ref = make_project(tmp_path, ONE_STEP)
    script = (
        "import sys; sys.modules['docker'] = None\n"
        "from pipec import driver\n"
        f"driver.compile_ref({str(tmp_path / ref)!r}, 'local_docker', ['base_image=x'])\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


def test_without_the_sdk_a_run_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "docker", None)
    with pytest.raises(EngineError, match=r"pip install 'pipec\[local_docker\]'"):
        connect()


# --------------------------------------------------------------------------------- pieces


def _masked(secrets: list[str], data: bytes, cuts: list[int]) -> bytes:
    masker = Masker(secrets)
    out = b""
    position = 0
    for cut in cuts:
        out += masker.feed(data[position : position + cut])
        position += cut
    return out + masker.feed(data[position:]) + masker.finish()


@given(
    # (A secret made of the mask's own `*` would be masked again: not a real secret.)
    st.lists(st.text(alphabet="abx", min_size=1, max_size=4), min_size=1, max_size=3),
    st.text(alphabet="abx*\n", max_size=40),
    st.lists(st.integers(min_value=0, max_value=7), max_size=10),
)
def test_masking_does_not_depend_on_how_output_is_cut(
    secrets: list[str], text: str, cuts: list[int]
) -> None:
    """However the output is cut into chunks, the log is the same, and no secret is whole in
    it."""
    data = text.encode()
    out = _masked(secrets, data, cuts)
    assert out == _masked(secrets, data, [])
    for secret in secrets:
        assert secret.encode() not in out


def test_masking_prefers_the_longest_secret_even_across_chunks() -> None:
    assert _masked(["b", "ba"], b"xbay", [2]) == b"x***y"
    assert _masked(["tok"], b"my tok!", [4]) == b"my ***!"
    assert _masked([], b"plain", [1, 1]) == b"plain"


def test_wheel_platforms_for_the_base_image() -> None:
    target = build.PythonTarget((3, 11), "x86_64", ("glibc", "2.36"))
    platforms = target.platforms()
    assert platforms[0] == "manylinux_2_36_x86_64" and "manylinux_2_17_x86_64" in platforms
    assert "manylinux2014_x86_64" in platforms and "manylinux1_x86_64" in platforms
    options = target.pip_options()
    assert options[:4] == ["--python-version", "3.11", "--implementation", "cp"]
    musl = build.PythonTarget((3, 12), "aarch64", ("musl", "1.2")).platforms()
    assert musl == ["musllinux_1_2_aarch64", "musllinux_1_1_aarch64", "musllinux_1_0_aarch64"]


def test_pipec_files_are_the_three_packages() -> None:
    files = build.pipec_files()
    for needed in ("__init__.py", "ir/model.py", "backends/runtime/core.py"):
        assert needed in files
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]


# ---------------------------------------------------------------- bad input, with an engine


def test_no_engine_is_one_line_and_nothing_runs(tmp_path: Path) -> None:
    ref = make_project(tmp_path, ONE_STEP)
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    done = pipec(tmp_path, "run", ref, *ON_BASE, *QUIET, env=env)
    one_line_exit_2(done, "no Docker engine answers", "start one")
    assert runs_recorded(tmp_path) == 0


@pytest.mark.docker
def test_an_unknown_base_image_is_named_with_how_to_get_one(tmp_path: Path) -> None:
    engine_ready()
    ref = make_project(tmp_path, ONE_STEP)
    done = pipec(tmp_path, "run", ref, *ON_BASE, "--set", "base_image=no-such/base:9", *QUIET)
    one_line_exit_2(done, "base image 'no-such/base:9'", "docker build", "docker load")
    assert runs_recorded(tmp_path) == 0


@pytest.mark.docker
def test_an_unknown_step_image_names_its_steps(tmp_path: Path) -> None:
    engine_ready()
    ref = make_project(tmp_path, ONE_STEP)
    done = pipec(tmp_path, "run", ref, *ON_BASE, "--set", "image=no-such/steps:1", *QUIET)
    one_line_exit_2(done, "image 'no-such/steps:1' (step one)", "docker pull")
    assert runs_recorded(tmp_path) == 0


@pytest.mark.docker
def test_an_image_without_the_runtime_is_named(tmp_path: Path) -> None:
    engine_ready()
    ref = make_project(tmp_path, ONE_STEP)
    done = pipec(tmp_path, "run", ref, *ON_BASE, "--set", f"image={BASE}", *QUIET)
    one_line_exit_2(done, f"image '{BASE}' does not have pipec's step runtime", "base_image")
    assert runs_recorded(tmp_path) == 0


@pytest.mark.docker
def test_an_image_without_python_is_named(tmp_path: Path) -> None:
    engine = engine_ready()
    if engine.image_id("pipec-test-nopython") is None:
        tar = io.BytesIO()
        with tarfile.open(fileobj=tar, mode="w") as archive:
            info = tarfile.TarInfo("hello.txt")
            info.size = 2
            archive.addfile(info, io.BytesIO(b"hi"))
        engine.api.import_image_from_data(tar.getvalue(), repository="pipec-test-nopython")
    ref = make_project(tmp_path, ONE_STEP)
    over = ("--set", "base_image=pipec-test-nopython")
    done = pipec(tmp_path, "run", ref, *ON_BASE, *over, *QUIET)
    one_line_exit_2(done, "image 'pipec-test-nopython' cannot run `python3`", ">= 3.11")
    assert runs_recorded(tmp_path) == 0


@pytest.mark.docker
def test_an_image_with_an_old_python_is_named(tmp_path: Path) -> None:
    """A stand-in for an old interpreter (no registry here to fetch one): `oldpython` answers
    the probe the way Python 3.9 would."""
    engine = engine_ready()
    probe = {"python": [3, 9, 18], "machine": "x86_64", "libc": ["glibc", "2.36"]}
    script = f"#!/bin/sh\necho 'PIPEC-PROBE {json.dumps(probe)}'\n"
    dockerfile = f"FROM {BASE}\nCOPY oldpython /usr/local/bin/oldpython\n"
    build_image(engine, "pipec-test-oldpython", dockerfile, {"oldpython": script})
    ref = make_project(tmp_path, ONE_STEP)
    over = ("--set", "base_image=pipec-test-oldpython", "--set", "python=oldpython")
    done = pipec(tmp_path, "run", ref, *ON_BASE, *over, *QUIET)
    one_line_exit_2(done, "image 'pipec-test-oldpython' has Python 3.9.18", ">= 3.11")
    assert runs_recorded(tmp_path) == 0


@pytest.mark.docker
def test_an_unknown_network_is_one_line(tmp_path: Path) -> None:
    engine_ready()
    ref = make_project(tmp_path, ONE_STEP)
    done = pipec(tmp_path, "run", ref, *ON_BASE, "--set", "network=no-such-net", *QUIET)
    one_line_exit_2(done, "network 'no-such-net'", "docker network create")
    assert runs_recorded(tmp_path) == 0


@pytest.mark.docker
def test_gpus_without_a_gpu_runtime_are_one_line(tmp_path: Path) -> None:
    engine = engine_ready()
    if engine.has_gpu_runtime():
        pytest.skip("this engine has a GPU runtime")
    ref = make_project(
        tmp_path,
        """
        @step(resources=Resources(gpu=1))
        def train() -> int:
            return 1

        @pipeline
        def gpu() -> None:
            train()
        """,
    )
    done = pipec(tmp_path, "run", ref, *ON_BASE, *QUIET)
    one_line_exit_2(done, "step train asks for GPUs", "no GPU runtime", "NVIDIA Container Toolkit")
    assert runs_recorded(tmp_path) == 0
