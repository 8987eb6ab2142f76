"""The authoring API and tracing: plain calls outside pipelines, options, outputs, scopes,
nested pipelines, determinism, and the CLI on every example."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipec import driver, loader
from pipec.cli import main
from pipec.ir import graph
from pipec.ir.model import Collect, Condition, Group, Loop, LoopItem, OutputRef, ParamRef, Step
from pipec.ir.serde import from_json, json_schema, to_json
from tests.conftest import EXAMPLES, REPO
from tests.helpers import load_ok


def _load(example: str) -> tuple[object, object]:
    pipeline, _ = driver.load_checked(str(REPO / "examples" / example))
    return pipeline, graph.steps(pipeline)


def test_step_outside_pipeline_is_plain_function() -> None:
    sys.path.insert(0, str(REPO))
    from examples.training import split, train

    assert split([1.0, 2.0, 3.0, 4.0, 5.0], ratio=0.6) == ([1.0, 2.0, 3.0], [4.0, 5.0])
    assert train([1.0, 3.0], lr=0.5) == b"0.5:2.000000"
    configured = train.with_options(retries=5, name="train-again")
    assert configured.options.retries == 5 and train.options.retries == 0
    assert configured([2.0], lr=1.0) == b"1.0:2.000000"


def test_training_example_structure() -> None:
    pipeline, _ = driver.load_checked(str(REPO / "examples" / "training.py"))
    steps = {s.id: s for s in graph.steps(pipeline)}
    assert list(steps) == [
        "load",
        "split",
        "train",
        "evaluate",
        "deploy",
        "notify",
        "train_2",
        "evaluate_2",
        "best",
        "cleanup",
    ]
    assert steps["split"].args["data"] == OutputRef(step="load", output="output")
    assert steps["train"].args["train"] == OutputRef(step="split", output="train")
    assert steps["train"].args["lr"] == ParamRef(param="lr")
    assert steps["train_2"].args["lr"] == LoopItem(loop="loop_1")
    assert steps["best"].args["scores"] == Collect(
        step="evaluate_2", output="output", loop="loop_1"
    )
    assert steps["cleanup"].after == ("train",)
    assert steps["split"].retries == 2 and steps["split"].timeout == 600.0
    assert steps["deploy"].secrets == ("REGISTRY_TOKEN",) and not steps["deploy"].cache
    assert steps["train"].resources.gpu_type == "nvidia-l4"
    assert pipeline.schedule == "0 3 * * *"
    condition = next(n for n in pipeline.body if isinstance(n, Condition))
    assert [s.id for s in condition.then] == ["deploy"]
    assert [s.id for s in condition.otherwise] == ["notify"]
    loop = next(n for n in pipeline.body if isinstance(n, Loop))
    assert loop.items == ParamRef(param="lrs") and loop.parallelism == 2
    assert steps["load"].location.file == "examples/training.py"


def test_nested_pipelines_become_groups() -> None:
    pipeline, _ = driver.load_checked(str(REPO / "examples" / "nested.py"))
    groups = [n for n in pipeline.body if isinstance(n, Group)]
    assert [g.id for g in groups] == ["word_count", "word_count_2"]
    assert all(g.pipeline == "word_count" for g in groups)
    first = groups[0].body[0]
    assert isinstance(first, Step) and first.args["shards"] == ParamRef(param="shards")
    second = groups[1].body[0]
    assert isinstance(second, Step) and second.args["shards"].kind == "const"
    loop = groups[0].body[1]
    assert isinstance(loop, Loop) and loop.items == OutputRef(step="make_shards", output="output")


def test_named_outputs_unpack(tmp_path: Path) -> None:
    pipeline = load_ok(
        tmp_path,
        """
class Pair(NamedTuple):
    a: int
    b: str

@step
def two() -> Pair:
    return Pair(1, "x")

@step
def show(a: int, b: str) -> None:
    pass

@pipeline
def p():
    a, b = two()
    show(a, b)
""",
    )
    show = graph.steps(pipeline)[1]
    assert show.args == {
        "a": OutputRef(step="two", output="a"),
        "b": OutputRef(step="two", output="b"),
    }


def test_tracing_is_deterministic_across_cwd(tmp_path: Path) -> None:
    ref = "examples/training.py"
    here = subprocess.run(
        [sys.executable, "-m", "pipec.cli", "ir", ref, "--format", "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    there = subprocess.run(
        [sys.executable, "-m", "pipec.cli", "ir", str(REPO / ref), "--format", "json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    ).stdout
    assert here == there
    assert str(REPO) not in here


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_json_round_trip_and_schema(example: Path) -> None:
    pipeline, _ = driver.load_checked(str(example))
    text = to_json(pipeline)
    assert from_json(text) == pipeline
    assert to_json(from_json(text)) == text
    assert json_schema()["title"] == "Pipeline"
    json.loads(text)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_cli_ir_and_validate_every_example(example: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ref = str(example)
    result = runner.invoke(main, ["validate", ref])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: pipeline")
    text = runner.invoke(main, ["ir", ref])
    assert text.exit_code == 0, text.output
    as_json = runner.invoke(main, ["ir", ref, "--format", "json"])
    assert as_json.exit_code == 0
    # Both IR files are REFs too, and give back the identical IR.
    (tmp_path / "p.pir").write_text(text.output)
    (tmp_path / "p.json").write_text(as_json.output)
    for ir_file in ("p.pir", "p.json"):
        again = runner.invoke(main, ["ir", str(tmp_path / ir_file), "--format", "json"])
        assert again.exit_code == 0, again.output
        assert again.output == as_json.output


def test_module_ref(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    pipeline, _, _ = loader.load("examples.hello:hello")
    assert pipeline is not None and pipeline.name == "hello"


def test_help_everywhere() -> None:
    runner = CliRunner()
    for command in ([], ["ir"], ["validate"], ["compile"], ["targets"], ["schema"]):
        result = runner.invoke(main, [*command, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output


def test_targets_lists_registered_targets() -> None:
    result = CliRunner().invoke(main, ["targets", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert "local" in data
    assert data["local"]["features"]["condition"] is True
    # Which optimizer rules run and whether chains fuse when the `fuse` setting is not given.
    assert data["local"]["optimizer"]["rules"] == ["fold", "prune", "cse"]
    fusing = {name for name, target in data.items() if target["optimizer"]["fuse_by_default"]}
    assert fusing == {"github", "kubernetes"}
    assert data["github"]["optimizer"]["limits"]["loop_items"] == 256
    # One Kubernetes object (etcd's default request size): KFP's Argo Workflow, pipec's Jobs.
    assert data["kubernetes"]["optimizer"]["limits"]["spec_bytes"] == 1536 * 1024


def test_targets_table_names_the_extra_to_install() -> None:
    result = CliRunner().invoke(main, ["targets"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "pip install 'pipec[vertex]'" in result.output
    assert "on; off with fuse=false" in result.output and "--no-optimize" in result.output
