"""What KFP and Vertex do with a compiled spec, beyond its shape: what their caches key on, which
values travel on a command line, and the pod fields every KFP backend version reads.

KFP's driver fingerprints a cached task from its inputs, its output definitions, the container
image and the executor's `command` + `args` as written in the spec (PVC names since 2.15; not the
env). Vertex also covers the env. So a change a cache must see has to change `command` or `args`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipec import driver
from pipec.backends.files import write_files
from pipec.ir.diagnostics import Diagnostic, DiagnosticError
from tests.conftest import REPO, tool_python
from tests.helpers import HEADER, write_pipeline

CHECKER = REPO / "tests" / "kfp_check.py"
TARGETS = ("kubeflow", "vertex")
SETTINGS = {
    "kubeflow": ["image=img:latest"],
    "vertex": ["image=img:latest", "project=p", "region=r", "pipeline_root=gs://b/r"],
}

TRAIN = """
@step
def train(rate: float) -> float:
    return rate * BODY

@pipeline
def fit(rate: float = 0.5) -> None:
    train(rate)
"""


def _module(folder: Path, source: str) -> Path:
    """`source` as `pl.py` in its own project folder (the same module name in every folder)."""
    folder.mkdir(parents=True)
    path = folder / "pl.py"
    path.write_text(HEADER + source, encoding="utf-8")
    return path


def _compiled(path: Path, target: str) -> tuple[dict[str, Any], list[Diagnostic]]:
    compiled = driver.prepare(str(path), target, SETTINGS[target])
    spec = next(yaml.safe_load_all(compiled.emit()["pipeline.yaml"]))
    return spec, compiled.warnings


def _cache_key_parts(spec: dict[str, Any], executor: str) -> tuple[str, list[str]]:
    """What KFP's fingerprint reads from the spec for one executor: image, command + args."""
    container = spec["deploymentSpec"]["executors"][executor]["container"]
    return container["image"], [*container["command"], *container["args"]]


@pytest.mark.parametrize("target", TARGETS)
def test_editing_a_step_body_changes_what_the_engine_caches_on(tmp_path: Path, target: str) -> None:
    first = _module(tmp_path / "a", TRAIN.replace("BODY", "2"))
    same = _module(tmp_path / "b", TRAIN.replace("BODY", "2"))
    edited = _module(tmp_path / "c", TRAIN.replace("BODY", "3"))
    keys = [_cache_key_parts(_compiled(p, target)[0], "exec-train") for p in (first, same, edited)]
    assert keys[0] == keys[1]
    assert keys[0] != keys[2]
    # The image tag is reused (`:latest`): only the command line tells the two apart.
    assert keys[0][0] == keys[2][0]


def test_the_code_hash_is_an_interpreter_option_the_runtime_never_parses(tmp_path: Path) -> None:
    path = _module(tmp_path / "a", TRAIN.replace("BODY", "2"))
    spec, _ = _compiled(path, "kubeflow")
    pipeline = driver.prepare(str(path), "kubeflow", SETTINGS["kubeflow"]).pipeline
    (component,) = pipeline.components
    command = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["command"]
    assert command == [
        "python3",
        "-X",
        f"pipec-code-hash={component.code_hash}",
        "-m",
        "pipec.backends.runtime",
    ]
    # CPython keeps unknown -X options in sys._xoptions and otherwise ignores them.
    done = subprocess.run(
        [
            "python3",
            "-X",
            f"pipec-code-hash={component.code_hash}",
            "-c",
            "import sys; print(sys._xoptions['pipec-code-hash'])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == component.code_hash


UNHASHED = """
import threading

LOCK = threading.Lock()

@step
def guarded(x: int) -> int:
    with LOCK:
        return x + 1

@step
def plain(x: int) -> int:
    return x

@pipeline
def locked(x: int = 1) -> None:
    plain(guarded(x))
"""


@pytest.mark.parametrize("target", TARGETS)
def test_a_step_with_unhashed_code_is_never_served_from_cache(tmp_path: Path, target: str) -> None:
    path = _module(tmp_path / "a", UNHASHED)
    spec, warnings = _compiled(path, target)
    tasks = spec["root"]["dag"]["tasks"]
    assert "cachingOptions" not in tasks["guarded"]
    assert tasks["plain"]["cachingOptions"] == {"enableCache": True}
    (warning,) = [w for w in warnings if w.code == "W001"]
    assert warning.severity == "warning"
    assert "'guarded'" in warning.message and "LOCK" in warning.message
    assert warning.location is not None and warning.location.file.endswith("pl.py")


def test_cache_false_needs_no_warning(tmp_path: Path) -> None:
    source = UNHASHED.replace("@step\ndef guarded", "@step(cache=False)\ndef guarded")
    assert source != UNHASHED
    path = _module(tmp_path / "a", source)
    _, warnings = _compiled(path, "kubeflow")
    assert [w for w in warnings if w.code == "W001"] == []


LARGE = """
@step
def features(n: int) -> list[list[float]]:
    return [[0.0] * 8] * n

@step
def fit(rows: list[list[float]], labels: dict[str, int], name: str, scale: float) -> float:
    return 0.0

@step
def labels() -> dict[str, int]:
    return {}

@step
def title() -> str:
    return "x"

@step
def score(rows: list[list[float]], x: int) -> float:
    return 0.0

@step
def best(scores: list[float], tables: list[list[list[float]]]) -> float:
    return 0.0

@step
def size(row: list[float]) -> int:
    return len(row)

@step
def half(x: float) -> float:
    return x / 2

@pipeline
def big(n: int = 10) -> None:
    rows = features(n)
    fit(rows, labels(), title(), 1.0)
    with foreach([1, 2]) as x:
        s = score(rows, x)
        t = features(x)
    best(collect(s), collect(t))
    with foreach(rows) as row:
        size(row)
    with foreach(collect(s)) as number:
        half(number)
"""


@pytest.mark.parametrize("target", TARGETS)
def test_list_and_dict_values_between_steps_warn_about_the_command_line(
    tmp_path: Path, target: str
) -> None:
    path = _module(tmp_path / "a", LARGE)
    _, warnings = _compiled(path, target)
    found = sorted(w.message for w in warnings if w.code == "W002")
    # One per value, naming every step that reads it; not for str values, nor for a collect of
    # numbers (as long as its loop), but for a collect of lists.
    assert len(found) == 3, found
    # (a foreach over a step's list reads it too: the task numbering its items takes it as an
    # argument; a foreach over a collect of numbers is not warned about)
    assert found[0].startswith(
        "output 'output' of step 'features' (list[list[float]]) reaches 'fit', 'score', "
        f"'loop_2' on the command line ({target} passes values as arguments)"
    )
    assert found[1].startswith(
        "output 'output' of step 'features_2' (list[list[float]]) reaches 'best'"
    )
    assert found[2].startswith("output 'output' of step 'labels' (dict[str, int]) reaches 'fit'")
    assert all("128 KiB" in message for message in found)
    hints = [w.hint for w in warnings if w.code == "W002"]
    assert all("artifact" in hint for hint in hints)


@pytest.mark.parametrize("target", TARGETS)
def test_a_constant_too_long_for_a_command_line_is_an_error(tmp_path: Path, target: str) -> None:
    source = """
    @step
    def use(rows: list[float]) -> float:
        return 0.0

    @pipeline
    def huge() -> None:
        use([0.125] * 30000)
    """
    path = write_pipeline(tmp_path, source)
    with pytest.raises(DiagnosticError) as caught:
        driver.prepare(str(path), target, SETTINGS[target]).emit()
    (problem,) = caught.value.diagnostics
    assert problem.code == "U001"
    assert "input 'rows' of step 'use'" in problem.message
    assert "128 KiB" in problem.message


def test_the_specs_still_validate_with_kfp(tmp_path: Path) -> None:
    paths = []
    for name, source in (("a", TRAIN.replace("BODY", "2")), ("b", UNHASHED), ("c", LARGE)):
        module = _module(tmp_path / name, source)
        bundle = driver.prepare(str(module), "kubeflow", SETTINGS["kubeflow"]).emit()
        paths += [str(p) for p in write_files(bundle, tmp_path / f"out-{name}")]
    python = tool_python("kfp")
    done = subprocess.run(
        [str(python), str(CHECKER), "spec", *paths], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
