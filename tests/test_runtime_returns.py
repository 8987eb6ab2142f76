"""Returned values are checked against the declared output types by the runtime itself, so a
step fails the same way on every engine (the local target runs the same runtime in-process,
engines run it as `python -m pipec.backends.runtime`; both are exercised here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipec.backends import runtime
from pipec.backends.runtime import store

MODULE = """
from pathlib import Path
from typing import NamedTuple, Optional

import numpy


class Split(NamedTuple):
    train: list[float]
    size: int


def to_int() -> int:
    return VALUE

def to_float() -> float:
    return VALUE

def to_floats() -> list[float]:
    return VALUE

def to_optional() -> Optional[int]:
    return VALUE

def to_path() -> Path:
    return VALUE

def to_nothing() -> None:
    return VALUE

def to_split() -> Split:
    return VALUE

def untyped():
    return VALUE
"""

CASES = [
    # (function, value source, expected stored value or the error's words)
    ("to_int", "3", 3),
    ("to_int", '"abc"', "declared int but the step returned a str ('abc')"),
    ("to_int", "True", "declared int but the step returned a bool"),
    ("to_int", "numpy.int64(7)", 7),
    ("to_float", "2", 2.0),
    ("to_float", "numpy.float32(0.5)", 0.5),
    ("to_float", 'float("nan")', "JSON has no NaN"),
    ("to_floats", "(1, 2.5)", [1.0, 2.5]),
    ("to_floats", "numpy.array([1.0, 2.0])", "return array.tolist()"),
    ("to_floats", '[1.0, "x"]', "declared list[float]"),
    ("to_optional", "None", None),
    ("to_path", '"a/string"', "declared artifact[pathlib.Path] but the step returned a str"),
    ("to_nothing", "5", "annotated `-> None`"),
    ("to_split", "([1.0], 1)", {"train": [1.0], "size": 1}),
    ("to_split", '"nope"', "declared to return a NamedTuple with fields train, size"),
    ("untyped", "{1, 2}", {1, 2}),  # any value at all: pickled
    ("untyped", "(x for x in [1])", "could not be stored: TypeError: cannot pickle"),
]


def _module(tmp_path: Path, function: str, value: str) -> Path:
    name = f"returns_{abs(hash((function, value))) % 10**8}"
    (tmp_path / f"{name}.py").write_text(MODULE.replace("VALUE", value), encoding="utf-8")
    return tmp_path / name


def _argv(module: Path, function: str, out: Path) -> list[str]:
    returns = {"to_split": "named", "to_nothing": "none"}.get(function, "single")
    argv = ["--component", f"{module.name}:{function}", "--returns", returns]
    argv += ["--code-root", str(module.parent)]
    if returns == "named":
        argv += ["--output", f"train={out}/train", "--output", f"size={out}/size"]
    elif returns == "single":
        argv += ["--output", f"output={out}/output"]
    return argv


@pytest.mark.parametrize(("function", "value", "expected"), CASES)
def test_the_runtime_checks_what_a_step_returns(
    tmp_path: Path, function: str, value: str, expected: object, capsys: pytest.CaptureFixture[str]
) -> None:
    module = _module(tmp_path, function, value)
    out = tmp_path / "out"
    argv = _argv(module, function, out)
    # In-process (how the local target runs a step) ...
    code = runtime.main(argv)
    in_process = capsys.readouterr().err
    # ... and as the command every engine runs, which must end the same way.
    done = subprocess.run(
        [sys.executable, "-m", "pipec.backends.runtime", *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == code
    if isinstance(expected, str):  # the words of the error
        assert code == 1, in_process
        assert expected in in_process and expected in done.stderr
        line = [x for x in done.stderr.splitlines() if x.startswith("pipec runtime: error:")]
        assert len(line) == 1 and "Traceback" not in done.stderr
        return
    assert code == 0, in_process
    if function == "to_split":
        assert isinstance(expected, dict)
        assert {k: store.read(str(out / k)) for k in expected} == expected
    elif function != "to_nothing":
        stored = store.read(str(out / "output"))
        assert stored == expected and type(stored) is type(expected)
        if function != "untyped":
            assert json.loads((out / "output" / "value.json").read_text()) == expected
