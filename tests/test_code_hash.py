"""The code hash (`pipec.ir.code`): what a step's cached result is keyed on.

Each case writes two versions of a module that differ only in something the step depends on and
requires different hashes (a stale cache hit otherwise), or differ only in something it does not
depend on and requires equal hashes (a needless miss otherwise).
"""

from __future__ import annotations

import importlib.util
import itertools
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from pipec.ir.code import CodeHash, analyze

_names = itertools.count()


def _load(folder: Path, source: str) -> ModuleType:
    """Import `source` as a fresh module `steps` from its own file (each version gets its own
    folder, so no cached source of an earlier version is ever read; both versions have the same
    module name, as two runs of a project do)."""
    folder = folder / f"v{next(_names)}"
    folder.mkdir()
    path = folder / "steps.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    module_name = "steps"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _hash(folder: Path, source: str, function: str = "step") -> CodeHash:
    module = _load(folder, source)
    return analyze(getattr(module, function), "steps", function)


def _differ(tmp_path: Path, before: str, after: str) -> None:
    assert _hash(tmp_path, before).digest != _hash(tmp_path, after).digest


CHANGES = {
    "set constant": ("NAMES = {'a', 'b'}", "NAMES = {'a', 'c'}", "return sorted(NAMES)"),
    "dict with int keys": ("T = {1: 'a'}", "T = {1: 'b'}", "return T[1]"),
    "frozenset in a tuple": (
        "T = (1, frozenset({2}))",
        "T = (1, frozenset({3}))",
        "return T",
    ),
    "instance of a local class": (
        "class C:\n    def __init__(self, n):\n        self.n = n\nOBJ = C(1)",
        "class C:\n    def __init__(self, n):\n        self.n = n\nOBJ = C(2)",
        "return OBJ.n",
    ),
    "method of an instance's class": (
        "class C:\n    def get(self):\n        return 1\nOBJ = C()",
        "class C:\n    def get(self):\n        return 2\nOBJ = C()",
        "return OBJ.get()",
    ),
    "functools.partial bound argument": (
        "import functools\ndef add(a, b):\n    return a + b\nADD = functools.partial(add, 1)",
        "import functools\ndef add(a, b):\n    return a + b\nADD = functools.partial(add, 2)",
        "return ADD(1)",
    ),
    "constant used only in a default": (
        "LIMIT = 3\ndef helper(n=LIMIT):\n    return n",
        "LIMIT = 4\ndef helper(n=LIMIT):\n    return n",
        "return helper()",
    ),
    "globals() lookup": (
        "FACTOR = 2\nOTHER = 1",
        "FACTOR = 3\nOTHER = 1",
        'return globals()["FACTOR"]',
    ),
    "class attribute from a constant": (
        "BASE = 1\nclass C:\n    X = BASE",
        "BASE = 2\nclass C:\n    X = BASE",
        "return C.X",
    ),
    "numpy array constant": (
        "import numpy\nW = numpy.array([1.0, 2.0])",
        "import numpy\nW = numpy.array([1.0, 3.0])",
        "return W.sum()",
    ),
}


@pytest.mark.parametrize("case", sorted(CHANGES))
def test_a_change_the_step_depends_on_changes_the_hash(tmp_path: Path, case: str) -> None:
    before, after, body = CHANGES[case]
    step = f"\n\ndef step():\n    {body}\n"
    _differ(tmp_path, before + step, after + step)


def test_an_unrelated_change_keeps_the_hash(tmp_path: Path) -> None:
    template = """
        import logging
        LOG = logging.getLogger("x")
        USED = 1
        UNUSED = {unused}

        def other():
            return {unused}

        def step():
            LOG.info("hi")
            return USED
        """
    first = _hash(tmp_path, template.format(unused=1))
    second = _hash(tmp_path, template.format(unused=2))
    assert first == second
    assert first.unhashed == ()


def test_what_cannot_be_hashed_by_value_is_named(tmp_path: Path) -> None:
    source = """
        import threading
        LOCK = threading.Lock()

        def step():
            with LOCK:
                return 1
        """
    found = _hash(tmp_path, source)
    assert len(found.unhashed) == 1 and found.unhashed[0].startswith("LOCK (")


NAMED_TUPLE = """
    from typing import NamedTuple

    class Pair(NamedTuple):
        a: int
        b: int

    def step() -> Pair:
        return Pair(1, 2)
    """


def test_the_hash_does_not_depend_on_how_the_module_was_loaded(tmp_path: Path) -> None:
    script = NAMED_TUPLE + """
    if __name__ == "__main__":
        from pipec.ir.code import analyze
        print(analyze(step, "steps", "step").digest)
    """
    path = tmp_path / "steps.py"
    path.write_text(textwrap.dedent(script), encoding="utf-8")
    # `python steps.py` (the step's module is __main__) and an import as `steps`.
    as_script = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, check=True
    ).stdout
    as_module = subprocess.run(
        [
            sys.executable,
            "-c",
            "import steps; from pipec.ir.code import analyze; "
            "print(analyze(steps.step, 'steps', 'step').digest)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert as_script.startswith("sha256:")
    assert as_script == as_module
