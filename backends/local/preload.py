"""Learned imports: pay a library's import once per run (or once ever), not once per step.

Each step of the local target runs in a fresh fork of the run's supervisor, so a module the step
imports inside its function (as KFP users are taught to: `from sklearn.linear_model import ...`)
is imported again by every step that needs it. The fork executor learns instead:

1. A worker whose step succeeded reports the library modules the step imported (`learn`):
   the names that appeared in `sys.modules`, in import order, of modules loaded from a file
   outside the project (the project's own modules are its code, hashed and imported by the
   runner already; builtins cost nothing).
2. The executor records them per component (code hash) in the metadata store, and asks the
   supervisor to import them (`preload`) before it forks the next workers: within a run once
   the first step of a component has shown what it needs, in later runs before the first fork.

What is refused, and why:

* **Threads.** Forking a process that has other threads is a trap (a lock another thread held
  stays held in the child forever). A library may start threads at import (OpenBLAS starts its
  pool when numpy loads); OpenBLAS stops that pool in its own `pthread_atfork` handler, so it is
  gone by the time the process forks. So threads are counted the way a fork sees them:
  `settled_threads` forks a child that exits at once (running every library's fork handlers),
  then counts `/proc/self/task`. A worker whose process still has other threads after its step
  teaches nothing (pipec cannot tell an import's threads from the step's own); a supervisor
  that has other threads after a preload forks no worker again (the executor replaces it and
  the store remembers the refusal, so later runs do not try again).
* **The step's environment.** A library may read the environment when it is imported
  (`OPENBLAS_NUM_THREADS`, `OMP_NUM_THREADS`, an SDK's settings), and a module preloaded in the
  supervisor is imported once for every step. So nothing is preloaded in a run where a step
  sets `env` or `secrets`: there, every step imports its libraries under its own environment.
  Preloads run with the project root as working directory, as steps do (some libraries read a
  config file from it).
* **Failures.** A module that fails to import in the supervisor is not preloaded; the step
  imports it itself, as without preloading. What a preloaded module prints while it is
  imported is dropped (it belongs to no step's log).
* **Off switch.** `preload = false` in `[tool.pipec.targets.local]`, or `PIPEC_PRELOAD=0` in
  the environment (for debugging: every step then imports everything itself).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from pipec.backends.runner.plan import Plan

TASKS = Path("/proc/self/task")
MAX_MODULES = 20000
"""At most this many module names are learned per component (a bound on the store's rows)."""


def refusal(plan: Plan, enabled: bool) -> str | None:
    """Why nothing is preloaded in a run of `plan` (None: preloading applies)."""
    if not enabled:
        return "turned off by the target's `preload = false` setting"
    if os.environ.get("PIPEC_PRELOAD", "1").strip() in ("0", "false", "no", "off"):
        return "turned off by PIPEC_PRELOAD=0"
    if not TASKS.is_dir():
        return "this system has no /proc/self/task to count threads with"
    for step in plan.steps.values():
        if step.env or step.secrets:
            return f"step {step.id} sets env or secrets, which a library may read when imported"
    return None


def native_threads() -> int:
    """This process's threads, native ones included, as the kernel counts them."""
    return len(os.listdir(TASKS))


def settled_threads() -> int:
    """The threads this process would fork with: fork a child that exits at once (so the
    libraries' `pthread_atfork` handlers run, e.g. OpenBLAS stopping its pool), then count."""
    if native_threads() == 1:
        return 1
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only exits
        os._exit(0)
    os.waitpid(pid, 0)
    return native_threads()


def learned(before: set[str], project_root: Path) -> list[str]:
    """The library modules imported since `before` (a copy of `sys.modules`' keys), in import
    order: loaded from a file that is not under the project root."""
    root = str(project_root.resolve()) + os.sep
    found: list[str] = []
    for name, module in list(sys.modules.items()):
        if name in before or name == "__main__" or module is None:
            continue
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or os.path.abspath(path).startswith(root):
            continue
        found.append(name)
        if len(found) >= MAX_MODULES:
            break
    return found


def write_report(path: Path, modules: Sequence[str], threads: int) -> None:
    """The worker's report of what its step imported (read by `read_report`)."""
    path.write_text(json.dumps({"modules": list(modules), "threads": threads}), "utf-8")


def read_report(path: Path) -> tuple[list[str], int] | None:
    """A worker's report, removed once read; None when the worker wrote none."""
    try:
        data = json.loads(path.read_text("utf-8"))
        path.unlink()
    except (OSError, ValueError):
        return None
    modules = data.get("modules") if isinstance(data, dict) else None
    threads = data.get("threads") if isinstance(data, dict) else None
    if not isinstance(modules, list) or not isinstance(threads, int):
        return None
    return [m for m in modules if isinstance(m, str)], threads


def preload(modules: Sequence[str], cwd: str) -> list[str]:
    """Import `modules` here, in order, from `cwd`, with stdout and stderr dropped; return
    those that imported (a failure only leaves that module to the steps)."""
    loaded: list[str] = []
    with _quiet(), _inside(cwd):
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # any failure: the step imports it itself
                continue
            loaded.append(name)
    return loaded


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """fds 1 and 2 to /dev/null (they are the runner's terminal here)."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


@contextlib.contextmanager
def _inside(cwd: str) -> Iterator[None]:
    """Work from `cwd` for the duration (back where it was after)."""
    here = os.getcwd()
    try:
        os.chdir(cwd)
    except OSError:
        yield
        return
    try:
        yield
    finally:
        os.chdir(here)
