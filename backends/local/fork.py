"""The fork executor: each step attempt runs in a forked warm worker, in its own process group.

Each step runs in a child forked from the runner, which has already imported pipec and the
pipeline's modules (`prepare` preloads them), so a step costs a fork instead of a fresh
interpreter. The child calls the shared runtime (`pipec.backends.runtime.main`) with the same
arguments a remote engine would pass, so inputs and outputs go through the artifact store exactly
as elsewhere. The child leads its own process group: a timeout (or the end of the step) kills the
group, grandchildren included, and the child dies with the runner (Linux parent-death signal) so a
killed runner leaves no orphans.

Secret values are masked at the file-descriptor level: the step's stdout and stderr (and those of
anything it spawns) go through a pipe that a thread in the child filters before the log file.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import io
import os
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipec.backends.runner.executor import Exit, Launch
from pipec.backends.runner.plan import Plan
from pipec.backends.runner.secrets import MASK

_PR_SET_PDEATHSIG = 1


@dataclass(eq=False)
class StepProcess:
    """A running step process (the leader of its own process group)."""

    pid: int
    deadline: float | None
    timeout: float | None
    pidfd: int | None = None
    timed_out: bool = False


class ForkExecutor:
    """Runs each step attempt in a child forked from the runner (see the module docstring)."""

    def prepare(self, plan: Plan, project_root: Path) -> None:
        """Import the components' modules before forking, so each step starts warm. A module
        that fails to import here fails in its step, with the traceback in the step's log."""
        root = str(project_root)
        if root not in sys.path:
            sys.path.insert(0, root)
        for module in sorted({step.component.module for step in plan.steps.values()}):
            try:
                importlib.import_module(module)
            except Exception:
                continue

    def start(self, launch: Launch) -> StepProcess:
        """Fork a child that runs the step; return at once."""
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, reported through its exit code
            os._exit(_child(launch))
        pidfd: int | None = None
        if hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError):
                pidfd = os.pidfd_open(pid)
        timeout = launch.timeout
        deadline = time.monotonic() + timeout if timeout else None
        return StepProcess(pid=pid, deadline=deadline, timeout=timeout, pidfd=pidfd)

    def wait(
        self, handles: Sequence[StepProcess], timeout: float
    ) -> list[tuple[StepProcess, Exit]]:
        """Wait up to `timeout` seconds (less when a deadline comes first) for any of `handles`
        to exit; kill the process groups that ran out of time (reported on a later call)."""
        now = time.monotonic()
        deadlines = [p.deadline for p in handles if p.deadline is not None and not p.timed_out]
        until = min([now + max(0.0, timeout), *deadlines])
        exited = _wait(handles, max(0.0, until - now))
        now = time.monotonic()
        for process in handles:
            if process.deadline is not None and now >= process.deadline and not process.timed_out:
                process.timed_out = True
                self.kill(process)
        return [
            (p, Exit(code, timed_out_after=p.timeout if p.timed_out else None))
            for p, code in exited
        ]

    def kill(self, handle: StepProcess) -> None:
        """SIGKILL the step's whole process group (the step and everything it started)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(handle.pid, signal.SIGKILL)

    def describe_exit(self, exit: Exit) -> str:
        """Human words for an exit."""
        if exit.timed_out_after is not None:
            return f"timed out after {exit.timed_out_after:g}s (process group killed)"
        if exit.code >= 0:
            return f"exit code {exit.code}"
        try:
            name = signal.Signals(-exit.code).name
        except ValueError:
            name = f"signal {-exit.code}"
        return f"killed by {name}"

    def close(self) -> None:
        """Nothing to release: every child was reaped by `wait`."""


def _child(launch: Launch) -> int:  # pragma: no cover - runs in the forked child
    masker: threading.Thread | None = None
    try:
        os.setsid()
        _die_with_parent()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(signum, signal.SIG_DFL)
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(-1)
        log_fd = os.open(launch.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        masker = _redirect_output(log_fd, [s.encode() for s in launch.masks if s])
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        # Fresh stream objects: a lock held by another runner thread at fork time is not ours.
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
        os.environ.update(launch.env)
        os.chdir(launch.cwd)
        from pipec.backends import runtime

        code = runtime.main(launch.argv)
    except BaseException:
        traceback.print_exc()
        code = 1
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    if masker is not None:
        os.close(1)
        os.close(2)
        masker.join(timeout=5)
    return code


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Ask Linux to SIGKILL this process when the runner dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the runner died before prctl took effect
            os._exit(137)


def _redirect_output(log_fd: int, secrets: list[bytes]) -> threading.Thread | None:
    """Point fds 1 and 2 at the log, through a masking pipe when there are secrets."""
    if not secrets:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        return None
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    thread = threading.Thread(target=_mask_stream, args=(read_fd, log_fd, secrets), daemon=True)
    thread.start()
    return thread


def _mask_stream(read_fd: int, log_fd: int, secrets: list[bytes]) -> None:
    """Copy `read_fd` to `log_fd`, replacing every secret, even one split across reads."""
    keep = max(len(s) for s in secrets) - 1
    ordered = sorted(secrets, key=len, reverse=True)
    mask = MASK.encode()
    pending = b""
    while True:
        chunk = os.read(read_fd, 65536)
        pending += chunk
        for secret in ordered:
            pending = pending.replace(secret, mask)
        if not chunk:
            os.write(log_fd, pending)
            break
        # Hold back a tail that could be the start of a secret completed by the next read.
        cut = max(0, len(pending) - keep)
        os.write(log_fd, pending[:cut])
        pending = pending[cut:]
    os.close(read_fd)
    os.close(log_fd)


def _wait(processes: Sequence[StepProcess], timeout: float) -> list[tuple[StepProcess, int]]:
    """Wait up to `timeout` seconds for any of `processes` to exit; return (process, exit code)
    for each one that did (negative codes are signals, as in subprocess)."""
    if not processes:
        time.sleep(max(0.0, timeout))
        return []
    pidfds = {p.pidfd: p for p in processes if p.pidfd is not None}
    if len(pidfds) == len(processes):
        readable, _, _ = select.select(list(pidfds), [], [], max(0.0, timeout))
        candidates = [pidfds[fd] for fd in readable]
        exited = _reap(candidates)
        if exited or not candidates:
            return exited
    # No pidfd (not Linux): poll.
    end = time.monotonic() + max(0.0, timeout)
    while True:
        exited = _reap(processes)
        if exited or time.monotonic() >= end:
            return exited
        time.sleep(min(0.002, max(0.0, end - time.monotonic())))


def _reap(processes: Sequence[StepProcess]) -> list[tuple[StepProcess, int]]:
    exited: list[tuple[StepProcess, int]] = []
    for process in processes:
        try:
            pid, status = os.waitpid(process.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = process.pid, 255 << 8
        if pid == 0:
            continue
        if process.pidfd is not None:
            os.close(process.pidfd)
            process.pidfd = None
        exited.append((process, os.waitstatus_to_exitcode(status)))
    return exited
