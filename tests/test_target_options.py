"""Per-target step options: `with_options(targets={"vertex": {...}})` gives one target options of
its own. Checked where written (unknown target or option: R006 with did-you-mean), kept in the IR
per target (text and JSON round trip), and in place of the step's own only when compiling for
that target (`pipec ir --target T` shows them; the target's checks see them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipec import driver
from pipec.ir import graph
from pipec.ir.diagnostics import DiagnosticError
from pipec.ir.model import Pipeline, Step
from pipec.ir.serde import from_json, to_json
from pipec.ir.text import from_text, to_text

PIPEC = Path(sys.executable).with_name("pipec")

FLOW = """\
from pipec import Resources, pipeline, step


@step(retries=1, secrets=["TOKEN"], env={"MODE": "fast"})
def show(x: int) -> int:
    return x


@pipeline
def flow() -> None:
    show.with_options(
        targets={"vertex": {"secrets": [], "image": "us-docker.pkg.dev/p/r/img:1", "retries": 4}}
    ).with_options(
        targets={"vertex": {"timeout": "5m"}, "kubeflow": {"resources": Resources(cpu=2)}}
    )(1)
    show.with_options(name="plain")(2)
"""


@pytest.fixture
def flow(tmp_path: Path) -> str:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "t"\n', encoding="utf-8")
    path = tmp_path / "flow_targets.py"
    path.write_text(FLOW, encoding="utf-8")
    return str(path)


def _steps(pipeline: Pipeline) -> dict[str, Step]:
    return {s.id: s for s in graph.steps(pipeline)}


def test_the_ir_keeps_each_targets_options_beside_the_steps_own(flow: str) -> None:
    pipeline, _ = driver.load_checked(flow)
    show = _steps(pipeline)["show"]
    assert (show.retries, show.secrets, show.image) == (1, ("TOKEN",), None)
    assert sorted(show.targets) == ["kubeflow", "vertex"]
    vertex = show.targets["vertex"]
    # a second with_options(targets=...) adds to what the first gave the same target
    assert (vertex.retries, vertex.timeout, vertex.secrets) == (4, 300.0, ())
    assert vertex.image == "us-docker.pkg.dev/p/r/img:1"
    assert vertex.env == {"MODE": "fast"}  # not given for vertex: the step's own
    assert show.targets["kubeflow"].resources.cpu == 2.0
    assert show.targets["kubeflow"].secrets == ("TOKEN",)
    assert _steps(pipeline)["plain"].targets == {}
    assert from_text(to_text(pipeline)) == pipeline
    assert from_json(to_json(pipeline)) == pipeline
    assert "on vertex { image" in to_text(pipeline)


def test_a_step_without_target_options_has_no_targets_key_in_json(flow: str) -> None:
    """Pipelines that use no per-target options keep the JSON they had before (goldens)."""
    text = to_json(driver.load_checked(flow)[0])
    assert text.count('"targets"') == 1


@pytest.mark.parametrize(
    ("target", "retries", "secrets", "cpu"),
    [("vertex", 4, (), None), ("kubeflow", 1, ("TOKEN",), 2.0), ("local", 1, ("TOKEN",), None)],
)
def test_a_target_sees_its_own_options_and_no_other(
    flow: str, target: str, retries: int, secrets: tuple[str, ...], cpu: float | None
) -> None:
    compiled = driver.prepare(flow, target, [], images=False)
    show = _steps(compiled.pipeline)["show"]
    assert (show.retries, show.secrets, show.resources.cpu) == (retries, secrets, cpu)
    assert all(not s.targets for s in graph.steps(compiled.pipeline))


GPU_FLOW = """\
from pipec import Resources, pipeline, step


@step(resources=Resources(gpu=1, gpu_type="nvidia-l4"))
def train(x: int) -> int:
    return x


@pipeline
def gpu_flow() -> None:
    train.with_options(targets={"local_docker": {"resources": Resources(gpu=1)}})(1)
    train.with_options(name="plain")(2)
"""


def test_the_targets_own_check_sees_the_targets_options(tmp_path: Path) -> None:
    """local_docker cannot choose a GPU model: the call that asks local_docker for any GPU
    compiles, the other one is the only U001."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "t"\n', encoding="utf-8")
    path = tmp_path / "gpu_flow.py"
    path.write_text(GPU_FLOW, encoding="utf-8")
    with pytest.raises(DiagnosticError) as raised:
        driver.compile_ref(str(path), "local_docker", ["base_image=pipec-base"])
    found = [(d.code, d.location.line if d.location else 0) for d in raised.value.diagnostics]
    assert found == [("U001", 12)]
    assert "'plain'" in raised.value.diagnostics[0].message


def test_pipec_ir_with_a_target_shows_its_options(flow: str) -> None:
    folder = Path(flow).parent
    done = subprocess.run(
        [str(PIPEC), "ir", "flow_targets.py", "--target", "kubeflow"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "step show = show(x=1) at 11\n  cpu 2.0\n  retries 1\n  secrets TOKEN\n" in done.stdout
    assert " on " not in done.stdout  # the IR for one target holds no other target's options


BAD = """\
from pipec import Resources, pipeline, step


@step(targets={"vertx": {"retries": 2}})
def show(x: int) -> int:
    return x


@pipeline
def flow() -> None:
    show.with_options(targets={"kubeflow": {"retires": 2, "name": "x", "timeout": "soon"}})(1)
    show.with_options(targets={"airflow": 3})(2)
    show.with_options(targets={"github": {"resources": Resources(gpus=1)}})(3)
    show.with_options(targets=["vertex"])(4)
"""


def test_bad_per_target_options_are_r_codes_at_their_lines_all_at_once(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "t"\n', encoding="utf-8")
    (tmp_path / "bad.py").write_text(BAD, encoding="utf-8")
    done = subprocess.run(
        [str(PIPEC), "validate", "bad.py"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 2
    found = [line for line in done.stderr.splitlines() if ": error[" in line]
    assert found == [
        "bad.py:4: error[R006]: unknown target 'vertx' in targets (did you mean 'vertex'?)",
        "bad.py:11: error[R006]: unknown option 'retires' for target 'kubeflow' "
        "(did you mean 'retries'?)",
        "bad.py:11: error[R006]: unknown option 'name' for target 'kubeflow' "
        "(a step has one name on every target)",
        "bad.py:11: error[R004]: timeout 'soon' is not a duration; write e.g. '45s', '10m' or "
        "'1h30m' (for target 'kubeflow')",
        "bad.py:12: error[R007]: the options for target 'airflow' must be a dict, got 3",
        "bad.py:13: error[R006]: Resources has no field 'gpus' (did you mean 'gpu'?)",
        "bad.py:14: error[R007]: targets must map target names to options, got ['vertex']",
    ]
    assert "Traceback" not in done.stderr


def test_a_target_block_in_the_text_form_cannot_set_after(flow: str) -> None:
    text = to_text(driver.load_checked(flow)[0]).replace("on vertex {", "on vertex { after plain")
    with pytest.raises(Exception, match="after is the same on every target"):
        from_text(text)
