"""Users' own materializers: chosen by the declared type, recorded by name, found again by a
consumer in another process (by importing the producer's module, or through an entry point)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import pipec
from pipec.backends.runtime import materializers, store

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _runtime(code_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # A fresh interpreter per step, as every engine runs one: nothing registered beforehand.
    return subprocess.run(
        [sys.executable, "-m", "pipec.backends.runtime", "--code-root", str(code_root), *args],
        cwd=code_root,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=False,
    )


def test_a_users_materializer_round_trips_between_processes(tmp_path: Path) -> None:
    out = tmp_path / "build"
    made = _runtime(
        EXAMPLES,
        *("--component", "vocabulary:build", "--input", "text=value:\"b a b c\""),
        *("--output", f"output={out}"),
    )
    assert made.returncode == 0, made.stderr
    meta = json.loads((out / "meta.json").read_text())
    assert meta["materializer"] == "vocabulary:VocabularyLines" and meta["count"] == 3
    assert (out / "words.txt").read_text() == "a\nb\nc\n"  # not a pickle
    # The consumer never imported `vocabulary` itself before reading: the recorded name leads it
    # there (and the step asserts it received a Vocabulary, not a list or a pickle's copy).
    value_file = tmp_path / "size.json"
    used = _runtime(
        EXAMPLES,
        *("--component", "vocabulary:size", "--input", f"vocabulary=artifact:{out}"),
        *("--output", f"output={tmp_path / 'size'}", "--output-value", f"output={value_file}"),
    )
    assert used.returncode == 0, used.stderr
    assert value_file.read_text() == "3"


def test_a_consumer_that_cannot_import_the_materializer_says_what_to_do(tmp_path: Path) -> None:
    out = tmp_path / "art"
    out.mkdir()
    (out / "meta.json").write_text(
        json.dumps({"materializer": "nowhere_to_be_found:Lines", "hash": "x", "type": "t"})
    )
    with pytest.raises(ValueError, match="make module 'nowhere_to_be_found' importable"):
        store.read(str(out))


class Base:
    pass


class Child(Base):
    pass


def test_the_declared_type_chooses_before_the_value(tmp_path: Path) -> None:
    @pipec.materializer(Base)
    class BaseFile(pipec.Materializer):
        name = "test-base"

        def save(self, value: Any, directory: Path) -> dict[str, Any]:
            (directory / "kind").write_text(type(value).__name__)
            return {}

        def load(self, directory: Path, meta: dict[str, Any]) -> Any:
            return Child() if (directory / "kind").read_text() == "Child" else Base()

    @pipec.materializer(Child)
    class ChildFile(BaseFile):
        name = "test-child"

    try:
        # Registered later, the Child materializer wins for a Child value of undeclared type...
        assert materializers.for_value(Child()).name == "test-child"
        # ...but a step declared `-> Base` gets Base's, even when it returns a Child.
        assert materializers.for_value(Child(), Base).name == "test-base"
        meta = store.write(Child(), str(tmp_path / "o"), Base)
        assert meta["materializer"] == "test-base"
        assert isinstance(store.read(str(tmp_path / "o")), Child)
        # Unrelated values still get the built-ins in their documented order.
        assert materializers.for_value([1, 2], Base).name == "json"
    finally:
        materializers._REGISTERED[:] = [
            m for m in materializers._REGISTERED if not m.name.startswith("test-")
        ]


def test_an_entry_point_finds_a_materializer_nobody_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "third_party_mat.py").write_text(
        "import pipec\n"
        "from pathlib import Path\n"
        "@pipec.materializer(complex)\n"
        "class ComplexText(pipec.Materializer):\n"
        "    name = 'complex-text'\n"
        "    def save(self, value, directory):\n"
        "        (directory / 'z.txt').write_text(repr(value)); return {}\n"
        "    def load(self, directory, meta):\n"
        "        return complex((directory / 'z.txt').read_text())\n"
    )
    dist = tmp_path / "third_party_mat-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: third-party-mat\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[pipec.materializers]\ncomplex-text = third_party_mat:ComplexText\n"
    )
    out = tmp_path / "z"
    out.mkdir()
    (out / "z.txt").write_text("(1+2j)")
    (out / "meta.json").write_text(json.dumps({"materializer": "complex-text", "hash": "x"}))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert store.read(str(out)) == 1 + 2j
    finally:
        materializers._REGISTERED[:] = [
            m for m in materializers._REGISTERED if m.name != "complex-text"
        ]
        sys.modules.pop("third_party_mat", None)


def test_registration_mistakes_are_clear() -> None:
    with pytest.raises(TypeError, match="takes one or more classes"):
        pipec.materializer("Vocabulary")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"subclass of pipec\.Materializer"):
        pipec.materializer(int)(object)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="built-in"):

        @pipec.materializer(int)
        class Json(pipec.Materializer):
            name = "json"

            def save(self, value: Any, directory: Path) -> dict[str, Any]:
                return {}

            def load(self, directory: Path, meta: dict[str, Any]) -> Any:
                return None
