"""Test helpers: write a pipeline source to a temporary project and load or check it."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipec import driver, loader
from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import Pipeline

_counter = itertools.count()

HEADER = """\
from typing import NamedTuple
from pipec import Resources, collect, foreach, otherwise, pipeline, step, when
"""


def write_pipeline(folder: Path, body: str, header: str = HEADER) -> Path:
    """Write `header + body` to a uniquely named module in `folder`; return its path."""
    path = folder / f"pl_{next(_counter)}.py"
    path.write_text(header + textwrap.dedent(body), encoding="utf-8")
    return path


def diagnose(folder: Path, body: str) -> list[Diagnostic]:
    """Every diagnostic the front end and the passes report for a pipeline source."""
    path = write_pipeline(folder, body)
    pipeline, found, _ = loader.load(str(path))
    if pipeline is None:
        return found
    _, more = driver.check(pipeline)
    return driver.merge(found, more)


def load_ok(folder: Path, body: str) -> Pipeline:
    """Trace and check a pipeline source that must be valid."""
    path = write_pipeline(folder, body)
    pipeline, _ = driver.load_checked(str(path))
    return pipeline


def line_of(path_text: str, needle: str) -> int:
    """The 1-based line of the first line containing `needle` in HEADER + dedented body."""
    for number, line in enumerate((HEADER + textwrap.dedent(path_text)).splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not found")


def prepared(
    ref: str, target: str, overrides: Sequence[str] = (), optimize: bool = True
) -> tuple[Pipeline, Any, Any]:
    """REF compiled for `target` (lowered IR), with the target's settings and backend."""
    compiled = driver.prepare(ref, target, overrides, optimize=optimize)
    return compiled.pipeline, compiled.backend.settings, compiled.backend
