"""`--set unsupported=warn`: each droppable feature a target cannot express is dropped from the
node that uses it, with one W005 warning naming the node and the feature; structural features
stay U001 errors saying why. Every target now expresses every feature in some form (`pipec
targets`), so this is checked, for every droppable feature, on a kubeflow target that claims
none of them (what the emitted spec says is checked too: nothing of the feature is left).

A target's own check refuses single options (a GPU model on Docker, a disk over Vertex's boot
disk, ...): each such refusal is a case here, on its real target, whose files with the option
dropped must equal those of the pipeline written without it; refusals of a shape stay errors
under warn, saying why they cannot be dropped; and the commands show every drop.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import pytest

from pipec import backends, driver
from pipec.backends.base import FEATURES, Capabilities, features_used
from pipec.backends.kubeflow import KubeflowBackend, KubeflowSettings
from pipec.backends.lowerings.drop import DROPPABLE, NOT_AN_OPTION
from pipec.backends.settings import SettingsError, load_settings
from pipec.backends.vertex import VertexBackend, VertexSettings
from pipec.ir.diagnostics import DiagnosticError
from pipec.ir.model import Resources, Step
from tests.helpers import write_pipeline
from tests.local_helpers import make_project, pipec

REPO = Path(__file__).resolve().parent.parent


class Structural(KubeflowBackend):
    """kubeflow, claiming only the features `unsupported=warn` cannot drop."""

    capabilities: ClassVar[Capabilities] = Capabilities(frozenset(FEATURES) - DROPPABLE)


# Feature -> a pipeline that uses it on step `s` (loop `l`, pipeline `p`), and what of it the
# kubeflow spec would show.
USES: dict[str, tuple[str, str]] = {
    "timeout": ("@step(timeout=30)", "activeDeadlineSeconds"),
    "retries": ("@step(retries=2, retry_delay=5)", "retryPolicy"),
    "cache": ("@step(cache=False)", "enableCache: false"),
    "resources": ('@step(resources=Resources(cpu=2, memory="1Gi"))', "resourceCpu"),
    "disk": ('@step(resources=Resources(disk="1Gi"))', "disk"),
    "gpu": ('@step(resources=Resources(gpu=1, gpu_type="nvidia-l4"))', "accelerator"),
    "secrets": ('@step(secrets=["TOKEN"])', "TOKEN"),
    "env": ('@step(env={"STAGE": "prod"})', "STAGE"),
    "image": ('@step(image="other:2")', "other:2"),
    "loop_parallelism": ("@step", "parallelism"),
    "schedule": ("@step", "0 3 * * *"),
}


def _source(feature: str) -> str:
    decorator = USES[feature][0]
    parallelism = ", parallelism=1" if feature == "loop_parallelism" else ""
    schedule = '(schedule="0 3 * * *")' if feature == "schedule" else ""
    return f"""
{decorator}
def s(x: int) -> int:
    return x

@pipeline{schedule}
def p() -> None:
    with foreach([1, 2]{parallelism}) as x:
        s(x=x)
"""


def _compile(
    tmp_path: Path, source: str, backend: type[KubeflowBackend], **settings: Any
) -> driver.Compiled:
    pipeline, front, root = driver._load(str(write_pipeline(tmp_path, source)))
    values = load_settings(backend.settings_model, backend.name, {"image": "img:1", **settings})
    return driver.compile_pipeline(pipeline, backend(values, root), front=front)


def test_every_droppable_feature_is_named_by_a_test() -> None:
    assert set(USES) == DROPPABLE


@pytest.mark.parametrize("feature", sorted(USES))
def test_a_droppable_feature_is_an_error_unless_warn(tmp_path: Path, feature: str) -> None:
    with pytest.raises(DiagnosticError) as caught:
        _compile(tmp_path, _source(feature), Structural)
    (only,) = caught.value.diagnostics
    assert only.code == "U001"
    assert FEATURES[feature] in only.message


@pytest.mark.parametrize("feature", sorted(USES))
def test_warn_drops_the_feature_naming_node_and_feature(tmp_path: Path, feature: str) -> None:
    compiled = _compile(tmp_path, _source(feature), Structural, unsupported="warn")
    (warning,) = compiled.warnings
    node = {"schedule": "p", "loop_parallelism": "loop_1"}.get(feature, "s")
    assert warning.code == "W005"
    assert warning.severity == "warning"
    assert f"cannot express {FEATURES[feature]}: dropped from {node!r}" in warning.message
    assert warning.location is not None and warning.location.line > 0
    assert feature not in features_used(compiled.pipeline)
    spec = compiled.emit()["pipeline.yaml"]
    assert USES[feature][1] not in spec, f"{feature} is still in the emitted spec"
    # what is not dropped stays: the step, its input, its loop
    assert features_used(compiled.pipeline).keys() >= {"loop_literal"}


def test_several_features_of_one_step_are_all_dropped(tmp_path: Path) -> None:
    source = """
@step(resources=Resources(cpu=1, disk="1Gi", gpu=1, gpu_type="nvidia-l4"), timeout=9)
def s() -> int:
    return 1

@pipeline
def p() -> None:
    s()
"""
    compiled = _compile(tmp_path, source, Structural, unsupported="warn")
    dropped = sorted(w.message.split("express ")[1].split(":")[0] for w in compiled.warnings)
    assert dropped == ["GPU requests", "cpu / memory", "disk requests", "step timeout"]
    (step,) = compiled.pipeline.body
    assert step.model_dump(include={"resources", "timeout"}) == {
        "resources": {"cpu": None, "memory": None, "gpu": None, "gpu_type": None, "disk": None},
        "timeout": None,
    }


def test_structural_features_stay_errors_with_the_reason(tmp_path: Path) -> None:
    class NoLoops(KubeflowBackend):
        capabilities: ClassVar[Capabilities] = Capabilities(
            frozenset(FEATURES) - {"loop_literal", "timeout"}
        )

    with pytest.raises(DiagnosticError) as caught:
        _compile(tmp_path, _source("timeout"), NoLoops, unsupported="warn")
    (error,) = caught.value.diagnostics  # the timeout was dropped; the loop cannot be
    assert error.code == "U001"
    assert "foreach over a literal list (used by 'loop_1')" in error.message
    assert "cannot be dropped" in error.hint


def test_vertex_takes_disk_up_to_its_boot_disk(tmp_path: Path) -> None:
    """Vertex gives every task a 100 GB boot disk and a PipelineSpec cannot size it: a request
    that fits compiles (nothing to emit), a larger one is U001 naming the size."""
    settings = {"project": "pr", "region": "us-central1", "pipeline_root": "gs://b/r"}
    source = """
@step(resources=Resources(disk="{disk}"))
def s() -> int:
    return 1

@pipeline
def p() -> None:
    s()
"""
    compiled = _compile(tmp_path, source.format(disk="20Gi"), VertexBackend, **settings)
    assert compiled.warnings == [] and "pipeline.yaml" in compiled.emit()
    with pytest.raises(DiagnosticError) as caught:
        _compile(tmp_path, source.format(disk="200Gi"), VertexBackend, **settings).emit()
    (error,) = caught.value.diagnostics
    assert error.code == "U001" and "a disk request of 200Gi, more than the 100 GB" in error.message


def test_the_setting_takes_error_or_warn() -> None:
    assert VertexSettings().unsupported == "error"
    assert KubeflowSettings(unsupported="warn").unsupported == "warn"
    with pytest.raises(SettingsError, match="unsupported"):
        load_settings(KubeflowSettings, "kubeflow", {"unsupported": "ignore"})


@pytest.mark.parametrize("target", list(backends.available()))
def test_every_feature_a_target_lacks_has_its_reason(target: str) -> None:
    """`pipec targets` shows no unexplained '-': each has a one-line note."""
    backend = backends.load(target)
    for feature in FEATURES:
        if feature not in backend.capabilities.supported:
            note = backend.notes.get(feature, "")
            assert note.strip() and "\n" not in note, f"{target}: {feature} has no reason"


# --- A target's own check (`Backend.check`): each refusal of one option of one node -----------

# (target, option) -> the settings, the pipeline's decorator and the call of step `s` that asks
# for the option, the same without it, and words of what the target says it cannot express. The
# options are given at the call (`with_options`) so that the step's code, and its hash, is the
# same in both.
OPTION_CASES: dict[tuple[str, str], tuple[list[str], str, str, str]] = {
    ("github", "gpu"): (
        ["artifact_root=/srv/pipec"],
        '@pipeline\ns.with_options(resources=Resources(gpu=1, gpu_type="nvidia-l4"))(x=n)',
        "@pipeline\ns.with_options(resources=Resources())(x=n)",
        "a GPU request with no GPU runner",
    ),
    ("local_docker", "gpu_type"): (
        ["image=img:1"],
        '@pipeline\ns.with_options(resources=Resources(gpu=2, gpu_type="nvidia-l4"))(x=n)',
        "@pipeline\ns.with_options(resources=Resources(gpu=2))(x=n)",
        "a GPU type (Docker requests GPUs by count only)",
    ),
    ("vertex", "gpu"): (
        ["project=pr", "region=us-central1", "pipeline_root=gs://b/r", "image=img:1"],
        "@pipeline\ns.with_options(resources=Resources(gpu=2))(x=n)",
        "@pipeline\ns.with_options(resources=Resources())(x=n)",
        "GPUs without a gpu_type",
    ),
    ("vertex", "disk"): (
        ["project=pr", "region=us-central1", "pipeline_root=gs://b/r", "image=img:1"],
        '@pipeline\ns.with_options(resources=Resources(disk="200Gi"))(x=n)',
        "@pipeline\ns.with_options(resources=Resources())(x=n)",
        "a disk request of 200Gi, more than the 100 GB boot disk",
    ),
    ("airflow", "disk"): (
        ["operator=docker", "artifact_root=/srv/a", "image=img:1"],
        '@pipeline\ns.with_options(resources=Resources(disk="10Gi"))(x=n)',
        "@pipeline\ns.with_options(resources=Resources())(x=n)",
        "a disk request with operator=docker",
    ),
    ("airflow", "gpu_type"): (
        ["operator=docker", "artifact_root=/srv/a", "image=img:1"],
        '@pipeline\ns.with_options(resources=Resources(gpu=1, gpu_type="nvidia-l4"))(x=n)',
        "@pipeline\ns.with_options(resources=Resources(gpu=1))(x=n)",
        "a GPU type with operator=docker",
    ),
    ("airflow", "schedule"): (
        ["operator=docker", "artifact_root=/srv/a", "image=img:1"],
        '@pipeline(schedule="0 3 * * *")\ns(x=n)',
        "@pipeline\ns(x=n)",
        "a schedule with the required parameter 'n'",
    ),
}



def _option_source(variant: str) -> str:
    decorator, call = variant.split("\n")
    return f"""
@step
def s(x: int) -> int:
    return x

{decorator}
def p(n: int) -> None:
    {call}
"""


def _files(compiled: driver.Compiled) -> dict[str, str]:
    """The emitted files, with the step's module and code hash spelled the same whichever test
    module it was written to (`write_pipeline` names each uniquely; the hash covers the name)."""
    (component,) = compiled.pipeline.components
    return {
        name: text.replace(component.code_hash, "CODE").replace(component.module, "MODULE")
        for name, text in compiled.emit().items()
    }


def test_every_droppable_refusal_of_a_target_has_a_case() -> None:
    """Each `drop=` a target's check passes to `unsupported_feature` is one case below."""
    found = set()
    for path in (REPO / "backends").rglob("*.py"):
        for option in re.findall(r'\bdrop="(\w+)"', path.read_text(encoding="utf-8")):
            found.add((path.relative_to(REPO / "backends").parts[0], option))
    assert found == set(OPTION_CASES)


@pytest.mark.parametrize(("target", "option"), sorted(OPTION_CASES))
def test_a_refused_option_is_an_error_unless_warn_drops_it(
    tmp_path: Path, target: str, option: str
) -> None:
    settings, asking, without, what = OPTION_CASES[(target, option)]
    ref = str(write_pipeline(tmp_path, _option_source(asking)))
    with pytest.raises(DiagnosticError) as caught:
        driver.prepare(ref, target, settings).emit()
    (error,) = caught.value.diagnostics
    node = "p" if option == "schedule" else "s"
    assert error.code == "U001" and what in error.message and f"(used by {node!r})" in error.message
    assert error.drop is not None and (error.drop.node, error.drop.option) == (node, option)

    compiled = driver.prepare(ref, target, [*settings, "unsupported=warn"])
    (warning,) = compiled.warnings
    assert warning.code == "W005" and warning.severity == "warning"
    assert warning.message.startswith(f"target {target!r} cannot express {what}")
    assert f"dropped option {option!r} from {node!r} (unsupported=warn), so " in warning.message
    assert warning.location is not None and warning.location.line > 0
    assert [r.why for r in compiled.rewrites if r.rule == "unsupported=warn"] == [warning.message]
    # The files are those of the pipeline written without the option: nothing of it is left.
    plain = write_pipeline(tmp_path, _option_source(without))
    expected = driver.prepare(str(plain), target, settings)
    assert expected.warnings == []
    assert _files(compiled) == _files(expected)


def test_local_docker_keeps_the_gpu_count_when_it_drops_the_model(tmp_path: Path) -> None:
    settings, asking, _, _ = OPTION_CASES[("local_docker", "gpu_type")]
    ref = str(write_pipeline(tmp_path, _option_source(asking)))
    plan = driver.prepare(ref, "local_docker", [*settings, "unsupported=warn"]).emit()["plan.json"]
    assert '"gpu": 2' in plan and "nvidia-l4" not in plan


def test_every_refused_option_of_a_step_is_dropped(tmp_path: Path) -> None:
    """Two refusals of one step: both options dropped (two warnings), nothing else."""
    settings = OPTION_CASES[("vertex", "disk")][0]
    both = 'resources=Resources(gpu=1, disk="1Ti")'
    source = _option_source(f"@pipeline\ns.with_options({both})(x=n)")
    compiled = driver.prepare(
        str(write_pipeline(tmp_path, source)), "vertex", [*settings, "unsupported=warn"]
    )
    assert sorted(w.message.split("dropped option ")[1][:8] for w in compiled.warnings) == [
        "'disk' f",
        "'gpu' fr",
    ]
    (step,) = compiled.pipeline.body
    assert isinstance(step, Step) and step.resources == Resources()


# A foreach over the collect of another: github and airflow keep it an error under warn.
FOREACH_OVER_COLLECT = """
@step
def s(x: int) -> int:
    return x

@pipeline
def p() -> None:
    with foreach([1, 2]) as a:
        y = s(x=a)
    with foreach(collect(y)) as b:
        s(x=b)
"""

# Shapes, names and values a target's check refuses: nothing to drop, so errors under warn too.
STRUCTURAL_CASES: dict[str, tuple[str, list[str], str, str]] = {
    "github foreach in a when in a foreach": (
        "github",
        ["artifact_root=/srv/pipec"],
        """
@step
def s(x: int) -> int:
    return x

@pipeline
def p() -> None:
    with foreach([1, 2]) as a:
        with when(a > 1):
            with foreach([3, 4]) as b:
                s(x=b)
""",
        "a foreach inside a when() inside a foreach",
    ),
    "github foreach over collect": (
        "github",
        ["artifact_root=/srv/pipec"],
        FOREACH_OVER_COLLECT,
        "a foreach over a collect()",
    ),
    "airflow foreach over collect": (
        "airflow",
        ["artifact_root=/srv/a", "image=img:1"],
        FOREACH_OVER_COLLECT,
        "a foreach over a collect()",
    ),
    "kubeflow collect of JSON text (found while emitting)": (
        "kubeflow",
        ["image=img:1"],
        """
@step
def s(x: int) -> int | None:
    return x

@step
def total(xs: list[int | None]) -> int:
    return 0

@pipeline
def p() -> None:
    with foreach([1, 2]) as a:
        y = s(x=a)
    total(xs=collect(y))
""",
        "a collect of 's'.output of type optional[int]",
    ),
}


@pytest.mark.parametrize("case", sorted(STRUCTURAL_CASES))
def test_a_refusal_naming_no_option_stays_an_error_under_warn(tmp_path: Path, case: str) -> None:
    target, settings, source, what = STRUCTURAL_CASES[case]
    ref = str(write_pipeline(tmp_path, source))
    hints = []
    for unsupported in ("error", "warn"):
        with pytest.raises(DiagnosticError) as caught:
            driver.prepare(ref, target, [*settings, f"unsupported={unsupported}"]).emit()
        (error,) = caught.value.diagnostics
        assert error.code == "U001" and what in error.message and error.drop is None
        hints.append(error.hint)
    assert NOT_AN_OPTION not in hints[0]  # the default says only how to fix it
    assert hints[1].startswith(hints[0]) and NOT_AN_OPTION in hints[1]
    assert "so it cannot be dropped" in hints[1]


def test_compile_explain_and_run_show_each_drop(tmp_path: Path) -> None:
    """The commands: without the setting, one U001 and exit 2; with it, the W005 warning on
    stderr of `pipec compile` (whose file lacks the option), `pipec explain` (a rewrite) and
    `pipec run` (before the run: here it stops at once, no engine answering)."""
    ref = make_project(
        tmp_path,
        """
        @step(resources=Resources(gpu=1, gpu_type="nvidia-l4"))
        def s(x: int) -> int:
            return x

        @pipeline
        def p(n: int = 1) -> None:
            s(x=n)
        """,
    )
    lines = (tmp_path / ref).read_text(encoding="utf-8").splitlines()
    call = f"{ref}:{lines.index('    s(x=n)') + 1}"  # where the step is used
    settings = ["--set", "image=img:1"]
    refused = pipec(tmp_path, "compile", ref, "-t", "local_docker", *settings, "-o", "out")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.count("error[") == 1 and f"{call}: error[U001]" in refused.stderr
    assert not (tmp_path / "out").exists()

    warn = [*settings, "--set", "unsupported=warn"]
    compiled = pipec(tmp_path, "compile", ref, "-t", "local_docker", *warn, "-o", "out")
    assert compiled.returncode == 0, compiled.stderr
    said = (
        f"{call}: warning[W005]: target 'local_docker' cannot express a GPU type (Docker "
        "requests GPUs by count only): dropped option 'gpu_type' from 's' (unsupported=warn)"
    )
    assert compiled.stderr.count("warning[W005]") == 1 and said in compiled.stderr
    plan = (tmp_path / "out" / "plan.json").read_text(encoding="utf-8")
    assert '"gpu_type": null' in plan and "nvidia-l4" not in plan

    explained = pipec(tmp_path, "explain", ref, "-t", "local_docker", *warn)
    assert explained.returncode == 0 and said in explained.stderr
    assert "unsupported=warn" in explained.stdout
    assert "dropped option 'gpu_type'" in explained.stdout

    no_engine = {"DOCKER_HOST": f"unix://{tmp_path}/no.sock"}
    run = pipec(tmp_path, "run", ref, "--target", "local_docker", *warn, env=no_engine)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.index(said) < run.stderr.index("no Docker engine answers")
