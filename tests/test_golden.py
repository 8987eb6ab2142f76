"""Golden files: every example's IR (JSON and text) and every target's output, byte for byte.

Target settings come from this repository's own pyproject.toml (`[tool.pipec.targets.<target>]`),
exactly as they would for a user compiling the examples.

`pytest tests/test_golden.py --update-goldens` rewrites them (refused when CI is set); read
`git diff golden/` before committing. A target that cannot express an example records the
diagnostics in `golden/<example>/<target>/UNSUPPORTED.txt`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipec import backends, driver
from pipec.backends.base import Bundle
from pipec.backends.files import write_files
from pipec.ir.diagnostics import DiagnosticError
from pipec.ir.serde import to_json
from pipec.ir.text import to_text
from tests.conftest import EXAMPLES, GOLDEN, REPO

TARGETS = list(backends.available())


def _ref(example: Path) -> str:
    return example.relative_to(REPO).as_posix()


def _expected(folder: Path) -> Bundle:
    if not folder.is_dir():
        return {}
    return {
        p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _compare(actual: Bundle, folder: Path, update: bool) -> None:
    if update:
        shutil.rmtree(folder, ignore_errors=True)
        write_files(actual, folder)
        return
    expected = _expected(folder)
    assert sorted(actual) == sorted(expected), f"file set differs in {folder}"
    for name in sorted(actual):
        assert actual[name] == expected[name], f"{folder / name} differs from the output"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_ir_golden(example: Path, update_goldens: bool) -> None:
    pipeline, _ = driver.load_checked(_ref(example))
    bundle = {"ir.json": to_json(pipeline), "ir.pir": to_text(pipeline)}
    folder = GOLDEN / example.stem
    if update_goldens:
        folder.mkdir(parents=True, exist_ok=True)
        write_files(bundle, folder)
        return
    for name, text in bundle.items():
        assert (folder / name).read_text(encoding="utf-8") == text, f"{folder / name} differs"


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_target_golden(example: Path, target: str, update_goldens: bool) -> None:
    folder = GOLDEN / example.stem / target
    try:
        bundle = driver.compile_ref(_ref(example), target)
    except DiagnosticError as exc:
        bundle = {"UNSUPPORTED.txt": "\n".join(d.render() for d in exc.diagnostics) + "\n"}
    _compare(bundle, folder, update_goldens)


def test_no_stale_goldens() -> None:
    """Every folder in golden/ belongs to an example and every target folder to a target."""
    names = {e.stem for e in EXAMPLES}
    for folder in GOLDEN.iterdir():
        assert folder.name in names, f"golden/{folder.name} has no example"
        for sub in folder.iterdir():
            if sub.is_dir():
                assert sub.name in TARGETS, f"{sub} is not a registered target"


GRAPH_FILES = {"graph.mmd": "mermaid", "graph.dot": "dot"}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_graph_golden(example: Path, update_goldens: bool) -> None:
    """`pipec graph` text (Mermaid and DOT) beside the example's IR."""
    from pipec.graph import outline, picture

    pipeline, _ = driver.load_checked(_ref(example))
    drawn = outline.of_pipeline(pipeline)
    bundle = {name: picture(drawn, fmt).decode("utf-8") for name, fmt in GRAPH_FILES.items()}
    folder = GOLDEN / example.stem
    if update_goldens:
        write_files(bundle, folder)
        return
    for name, text in bundle.items():
        assert (folder / name).read_text(encoding="utf-8") == text, f"{folder / name} differs"
