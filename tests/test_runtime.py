"""The step runtime contract (docs/DESIGN.md): `python -m pipec.backends.runtime ...`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

from pipec.backends import runtime
from pipec.backends.runtime import materializers, store

MODULE = """
from pathlib import Path
from typing import NamedTuple

class Pair(NamedTuple):
    total: int
    label: str

def add(a: int, b: int = 10) -> Pair:
    print("adding", a, b)
    return Pair(a + b, f"sum of {a} and {b}")

def count(items: list) -> int:
    return len(items)

def folder(name: str) -> Path:
    out = Path(name)
    out.mkdir(exist_ok=True)
    (out / "inside.txt").write_text("content")
    return out

def read_folder(p: Path) -> str:
    return (p / "inside.txt").read_text()

class Opaque:
    def __init__(self, v):
        self.v = v

def opaque() -> Opaque:
    return Opaque(5)

def unwrap(o) -> int:
    return o.v

def boom() -> int:
    raise ValueError("exploded in user code")

def nothing() -> None:
    return None
"""


@pytest.fixture
def code_root(tmp_path: Path) -> Path:
    (tmp_path / "rtmod.py").write_text(MODULE)
    return tmp_path


def _run(
    code_root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipec.backends.runtime", "--code-root", str(code_root), *args],
        cwd=code_root,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_named_outputs_value_inputs_and_output_values(code_root: Path) -> None:
    out = code_root / "out"
    done = _run(
        code_root,
        "--component", "rtmod:add",
        "--returns", "named",
        "--input", "a=value:3",
        "--output", f"total={out}/total",
        "--output", f"label={out}/label",
        "--output-value", f"total={out}/total.txt",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "adding 3 10" in done.stdout  # b took the function's default
    meta = json.loads((out / "total" / "meta.json").read_text())
    assert meta["materializer"] == "json" and meta["type"] == "builtins.int"
    assert meta["hash"].startswith("sha256:")
    assert store.read(str(out / "total")) == 13
    assert store.read(str(out / "label")) == "sum of 3 and 10"
    assert (out / "total.txt").read_text() == "13"


def test_output_values_sharing_a_file_are_one_object(code_root: Path) -> None:
    """Airflow's one XCom file per task: outputs sent to the same FILE arrive there together,
    keyed by output name (one alone is its plain value, as above)."""
    out = code_root / "out"
    done = _run(
        code_root,
        "--component", "rtmod:add",
        "--returns", "named",
        "--input", "a=value:3",
        "--output", f"total={out}/total",
        "--output", f"label={out}/label",
        "--output-value", f"total={out}/xcom.json",
        "--output-value", f"label={out}/xcom.json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shared = json.loads((out / "xcom.json").read_text())
    assert shared == {"total": 13, "label": "sum of 3 and 10"}


def test_every_source_kind(code_root: Path) -> None:
    out = code_root / "out"
    store.write([1, 2, 3], str(out / "list"))
    store.write(4, str(out / "four"))
    (code_root / "b.json").write_text("5")
    done = _run(
        code_root,
        "--component", "rtmod:add", "--returns", "named",
        "--input", f"a=artifact:{out}/four",
        "--input", f"b=value-file:{code_root}/b.json",
        "--output", f"total={out}/t1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert store.read(str(out / "t1")) == 9
    done = _run(
        code_root,
        "--component", "rtmod:count",
        "--input", "items=env:ITEMS_JSON",
        "--output", f"output={out}/c1",
        env={"ITEMS_JSON": "[1, 2]"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert store.read(str(out / "c1")) == 2
    fan_in = json.dumps([f"{out}/four", f"{out}/list"])
    done = _run(
        code_root, "--component", "rtmod:count",
        "--input", f"items=artifacts:{fan_in}", "--output", f"output={out}/c2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert store.read(str(out / "c2")) == 2


def test_artifacts_round_trip_and_fsspec_urls(code_root: Path) -> None:
    out = code_root / "out"
    done = _run(
        code_root, "--component", "rtmod:folder", "--input", 'name=value:"made"',
        "--output", f"output=file://{out}/dir",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "dir" / "meta.json").read_text())["materializer"] == "path"
    done = _run(
        code_root, "--component", "rtmod:read_folder",
        "--input", f"p=artifact:{out}/dir", "--output", f"output={out}/text",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert store.read(str(out / "text")) == "content"
    done = _run(code_root, "--component", "rtmod:opaque", "--output", f"output={out}/obj")
    assert json.loads((out / "obj" / "meta.json").read_text())["materializer"] == "pickle"
    done = _run(
        code_root, "--component", "rtmod:unwrap",
        "--input", f"o=artifact:{out}/obj", "--output", f"output={out}/v",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert store.read(str(out / "v")) == 5


def test_exit_codes(code_root: Path) -> None:
    failed = _run(code_root, "--component", "rtmod:boom", "--output", "output=x")
    assert failed.returncode == 1
    assert "exploded in user code" in failed.stderr
    assert 'rtmod.py", line' in failed.stderr.splitlines()[1]  # traceback starts in user code
    for args in (
        ["--component", "rtmod:add", "--input", "a=nokind"],
        ["--component", "rtmod:add", "--input", "a=value:{bad json"],
        ["--component", "rtmod:add", "--input", "a=artifact:/does/not/exist"],
        ["--component", "rtmod:missing_function"],
        ["--component", "rtmod:add", "--returns", "named", "--input", "a=value:1",
         "--output", "nope=out/x"],
        ["--component", "rtmod:opaque", "--output", "output=o", "--output-value", "output=o.txt"],
        ["--component", "rtmod:nothing", "--returns", "none", "--output", "output=x"],
        ["--bogus"],
    ):  # fmt: skip
        done = _run(code_root, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("pipec runtime: error:"), done.stderr


def test_in_process_main_is_the_same_code_path(code_root: Path) -> None:
    out = code_root / "inproc"
    code = runtime.main(
        ["--code-root", str(code_root), "--component", "rtmod:count",
         "--input", "items=value:[1,2,3]", "--output", f"output={out}"]
    )  # fmt: skip
    assert code == 0
    assert store.read(str(out)) == 3


def test_rewriting_an_output_replaces_it_whole(tmp_path: Path) -> None:
    target = str(tmp_path / "o")
    store.write(b"first", target)
    store.write({"second": True}, target)
    assert store.read(target) == {"second": True}
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["meta.json", "value.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["o"]  # no staging folders left


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ({"a": [1, 2.5, None, "x"]}, "json"),
        (b"raw", "bytes"),
        (numpy.arange(4.0), "numpy"),
        (numpy.int64(7), "numpy"),
        ((1, 2), "pickle"),
        (float("nan"), "pickle"),
        ({1: "non-str key"}, "pickle"),
    ],
)
def test_materializer_choice_and_round_trip(tmp_path: Path, value: object, name: str) -> None:
    assert materializers.for_value(value).name == name
    meta = store.write(value, str(tmp_path / "v"))
    assert meta["materializer"] == name
    loaded = store.read(str(tmp_path / "v"))
    if isinstance(value, numpy.ndarray | numpy.generic):
        assert numpy.array_equal(loaded, value)
    elif value != value:  # NaN
        assert loaded != loaded
    else:
        assert loaded == value


def test_equal_values_hash_equally(tmp_path: Path) -> None:
    first = store.write({"b": 1, "a": 2}, str(tmp_path / "x"))
    second = store.write({"a": 2, "b": 1}, str(tmp_path / "y"))
    third = store.write({"a": 2, "b": 2}, str(tmp_path / "z"))
    assert first["hash"] == second["hash"] != third["hash"]


@pytest.mark.parametrize(
    "layout",
    [
        {},
        {"value.json": b"1"},
        {"b": b"", "a": b"x", "a b": b"y", "B": b"z", "\u00e9": b"", "meta.json": b"{}"},
        {"a": b"1", "sub/b": b"2", "sub/deeper/c": b"3", "z": b"4"},  # walked
        {"a": b"1", "link-to-a": "a"},  # a link to a file is a file, listed
        {"a": b"1", "broken": "nowhere"},  # a broken link is no file: walked, left out
    ],
)
def test_a_flat_output_is_listed_as_the_walk_would(
    tmp_path: Path, layout: dict[str, bytes | str]
) -> None:
    """The hash lists a folder of files in one listing; what it lists, and in which order, is
    what walking the folder gives (so every hash stays what it was)."""
    for name, content in layout.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.symlink_to(tmp_path / content)
        else:
            path.write_bytes(content)
    assert store._files_below(tmp_path) == store._walked_files(tmp_path)
    assert store._files_below(tmp_path / "missing") == store._walked_files(tmp_path / "missing")


def test_raw_text_input_and_output(code_root: Path) -> None:
    """KFP hands STRING parameters over raw: `text:` takes them verbatim, `--output-text` writes
    a str output unquoted, and a non-str output is an invocation error."""
    out = code_root / "out"
    hostile = 'x"; echo $(id) {{ run_id }} \\n ünï'
    done = _run(
        code_root,
        "--component", "rtmod:folder",
        "--input", f"name=text:{hostile}",
        "--output", f"output={out}/p",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (code_root / hostile / "inside.txt").read_text() == "content"
    done = _run(
        code_root,
        "--component", "rtmod:add", "--returns", "named",
        "--input", "a=value:1",
        "--output", f"label={out}/label", "--output", f"total={out}/total",
        "--output-text", f"label={out}/label.txt",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (out / "label.txt").read_text() == "sum of 1 and 10"
    done = _run(
        code_root,
        "--component", "rtmod:add", "--returns", "named",
        "--input", "a=value:1",
        "--output", f"total={out}/total2",
        "--output-text", f"total={out}/total.txt",
    )  # fmt: skip
    assert done.returncode == 2
    assert "is not a str" in done.stderr


def test_traceback_of_a_step_object_starts_in_user_code(tmp_path: Path) -> None:
    """A `@step` object is called through pipec's wrapper; the printed traceback skips it."""
    (tmp_path / "stepmod.py").write_text(
        "from pipec import step\n\n@step\ndef broken() -> int:\n    raise ValueError('nope')\n"
    )
    failed = _run(tmp_path, "--component", "stepmod:broken", "--output", "output=x")
    assert failed.returncode == 1
    lines = failed.stderr.splitlines()
    assert 'stepmod.py", line 5' in lines[1], failed.stderr
    assert "dsl.py" not in failed.stderr and "runtime.py" not in failed.stderr


def test_the_command_line_is_built_and_parsed_by_one_module() -> None:
    from pipec.backends.runtime.invocation import Invocation, SourceKind, parse, source

    built: Invocation[str] = Invocation(
        component="pkg.mod:Class.method",
        returns="named",
        code_root="/app",
        inputs={"a": source(SourceKind.VALUE, '{"k": [1, 2]}'), "b": source(SourceKind.ENV, "V")},
        outputs={"total": "/out/total", "label": "/out/label"},
        output_values={"total": "/tmp/total.json"},
        output_texts={"label": "/tmp/label.txt"},
    )
    argv = built.argv()
    assert parse(argv) == built
    # Each output is followed by where its value or text also goes.
    assert argv[argv.index("--output") : argv.index("--output") + 4] == [
        "--output",
        "total=/out/total",
        "--output-value",
        "total=/tmp/total.json",
    ]
    with pytest.raises(runtime.InvocationError, match="unknown input kind 'nope'"):
        runtime.load_input("nope:x")
