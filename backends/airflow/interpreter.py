"""The interpreter a `local`-mode DAG runs its steps with, checked when the DAG is compiled.

In `local` mode a step runs as `PYTHON -m pipec.backends.runtime` on the Airflow worker, so that
interpreter must have pipec (and the steps' own dependencies). When the code root is the project
folder on this machine, the DAG runs here: by default `python` is the interpreter compiling it
(`AirflowSettings.resolved`), and a chosen one that is missing or cannot import pipec is an error.
With a code root of its own the DAG may be meant for another machine, so there the same finding
is a warning (W003).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipec.backends.airflow.settings import AirflowSettings
from pipec.backends.settings import SettingsError
from pipec.ir.diagnostics import Diagnostic

_PROBE = (
    "import importlib.util, sys; "
    "sys.exit(importlib.util.find_spec('pipec.backends.runtime') is None)"
)


def check(settings: AirflowSettings, project_root: Path) -> list[Diagnostic]:
    """Nothing, a W003 warning, or a SettingsError (see the module docstring)."""
    problem = problem_with(settings.python)
    if problem is None:
        return []
    here = settings.code_root is not None and Path(settings.code_root).resolve() == project_root
    what = f"target 'airflow' (operator=local): python {settings.python!r} {problem}"
    fix = "set python=... to an interpreter with pipec and the steps' dependencies installed"
    if here:
        raise SettingsError(f"{what}; the DAG runs its steps with it on this machine: {fix}")
    return [
        Diagnostic(
            code="W003",
            message=f"{what} here; the workers that run this DAG need one that can",
            hint=f"if the DAG runs on this machine, {fix}",
            severity="warning",
        )
    ]


def problem_with(python: str) -> str | None:
    """Why `python` cannot run pipec's step runtime on this machine, or None when it can."""
    found = shutil.which(python)
    if found is None:
        return "names no such interpreter (not a file, nor on PATH)"
    # Compared without resolving links: a virtual environment's python is a link to the base
    # interpreter, and only its own path finds the environment's packages.
    if os.path.abspath(found) == os.path.abspath(sys.executable):
        return None  # the interpreter compiling this DAG: it has pipec
    return _probe(found)


@functools.lru_cache(maxsize=16)
def _probe(python: str) -> str | None:
    try:
        done = subprocess.run(
            [python, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=False
        )
    except OSError as exc:
        return f"cannot be started ({exc.strerror or exc})"
    except subprocess.TimeoutExpired:
        return "did not answer within 120 s"
    if done.returncode != 0:
        return "cannot import pipec"
    return None
