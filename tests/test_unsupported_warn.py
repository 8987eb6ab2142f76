"""`--set unsupported=warn`: each droppable feature a target cannot express is dropped from the
node that uses it, with one W005 warning naming the node and the feature; structural features
stay U001 errors saying why. Every target now expresses every feature in some form (`pipec
targets`), so this is checked, for every droppable feature, on a kubeflow target that claims
none of them (what the emitted spec says is checked too: nothing of the feature is left)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from pipec import backends, driver
from pipec.backends.base import FEATURES, Capabilities, features_used
from pipec.backends.kubeflow import KubeflowBackend, KubeflowSettings
from pipec.backends.lowerings.drop import DROPPABLE
from pipec.backends.settings import SettingsError, load_settings
from pipec.backends.vertex import VertexBackend, VertexSettings
from pipec.ir.diagnostics import DiagnosticError
from tests.helpers import write_pipeline


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
