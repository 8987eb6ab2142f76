"""Helpers for the local-target tests: a throwaway project, the `pipec` command, waiting."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipec.backends.base import RunOptions
from pipec.backends.local.supervisor import descendants
from pipec.backends.runner.results import RunResult
from tests import helpers

PIPEC = Path(sys.executable).with_name("pipec")
# Step bodies in these tests sleep, spawn processes and write files.
HEADER = "import os, sys, time, subprocess\nfrom pathlib import Path\n" + helpers.HEADER


def make_project(root: Path, body: str) -> str:
    """Write a project (pyproject.toml + one uniquely named module, as the runner imports it in
    this process); return the module file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text('[project]\nname = "t"\n', encoding="utf-8")
    return helpers.write_pipeline(root, body, HEADER).name


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
    """Compile REF for the local target and run it through its backend in this process
    (quietly); `kw` are `RunOptions`."""
    pipeline, _, backend = helpers.prepared(str(root / ref), "local")
    outcome = backend.run(pipeline, params or {}, RunOptions(view="quiet", **kw))
    assert outcome.result is not None
    return outcome.result


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


def processes_with_env(name: str, value: str) -> list[int]:
    """Live processes (not zombies) whose environment has `name=value`: a run's steps and
    everything they start inherit the runner's environment."""
    wanted = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if wanted in environ.split(b"\0") and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


DUMPABLE = {"PYTHONFAULTHANDLER": "1"}
"""Environment for a runner a test may have to explain: SIGABRT then prints every thread's
Python stack on its stderr (faulthandler), so a hang says where it hangs."""


def ctrl_c_as_in_a_terminal() -> None:
    """`preexec_fn` for a runner a test sends SIGINT: the default disposition, as a terminal's
    foreground job has. A shell's background job (`cmd &`, as a script may start the test
    command) ignores SIGINT, children inherit that, and Python (like the runner, on purpose:
    `nohup` means it) keeps an inherited ignore, so the runner would never see the Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ended_or_explained(
    proc: subprocess.Popen[str], limit: float, stderr_file: Path | None = None
) -> tuple[int, str]:
    """Wait up to `limit` seconds for `proc` (started with `DUMPABLE` in its environment) to
    exit: (exit code, stderr). If it does not, fail with its stacks and the processes below it,
    and kill it, so a rare hang under load leaves evidence and no runner behind."""
    try:
        if stderr_file is None:
            _, err = proc.communicate(timeout=limit)
        else:
            proc.wait(timeout=limit)
            err = stderr_file.read_text(errors="replace")
        return proc.returncode, err
    except subprocess.TimeoutExpired:
        below = [proc.pid, *descendants(proc.pid)]
        tree = subprocess.run(
            ["ps", "-o", "pid,ppid,stat,etime,wchan:20,args", "-p", ",".join(map(str, below))],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        proc.send_signal(signal.SIGABRT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if stderr_file is not None:
            err = stderr_file.read_text(errors="replace")
        raise AssertionError(
            f"the runner did not exit within {limit:g}s; processes:\n"
            + tree
            + f"\nits stderr (stacks at the end):\n{err}"
        ) from None
