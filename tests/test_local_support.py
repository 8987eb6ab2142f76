"""Helpers for the local-target tests: a throwaway project, the `pipec` command, waiting.

(No tests here; pytest collects the module and finds none.)
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipec.backends.runner.results import RunResult
from pipec.backends.runner.scheduler import run_pipeline
from tests.helpers import prepared

PIPEC = Path(sys.executable).with_name("pipec")
HEADER = """\
import os, sys, time, subprocess
from pathlib import Path
from typing import NamedTuple
from pipec import Resources, collect, foreach, otherwise, pipeline, step, when
"""
_modules = itertools.count()


def make_project(root: Path, body: str) -> str:
    """Write a project (pyproject.toml + one uniquely named module); return the module file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text('[project]\nname = "t"\n', encoding="utf-8")
    name = f"lp_{os.getpid()}_{next(_modules)}.py"
    (root / name).write_text(HEADER + textwrap.dedent(body), encoding="utf-8")
    return name


def pipec(
    root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the `pipec` command in `root`."""
    return subprocess.run(
        [str(PIPEC), *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def run_json(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, Any]:
    """`pipec run ARGS --json --view quiet`: (exit code, parsed stdout)."""
    done = pipec(root, "run", *args, "--json", "--view", "quiet", env=env)
    try:
        return done.returncode, json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"stdout is not JSON: {done.stdout!r}\n{done.stderr}") from exc


def run_here(root: Path, ref: str, params: dict[str, Any] | None = None, **kw: Any) -> RunResult:
    """Load REF through the driver and run it in this process (quietly)."""
    pipeline, settings, _ = prepared(str(root / ref), "local")
    return run_pipeline(pipeline, settings, params or {}, root=root, view="quiet", **kw)


def by_label(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`--json` steps keyed by `id` or `id[i]`."""
    found = {}
    for step in summary["steps"]:
        suffix = ".".join(str(i) for i in step["iteration"])
        found[f"{step['id']}[{suffix}]" if suffix else step["id"]] = step
    return found


def wait_for(condition: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    """Poll until `condition()` holds (a generous limit: this is not a timing assertion)."""
    end = time.monotonic() + limit
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
