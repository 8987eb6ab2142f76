"""Step processes for the local runner: fork a warm worker per step, wait, kill its process tree.

Each step runs in a child forked from the runner, which has already imported pipec and the
pipeline's modules, so a step costs a fork instead of a fresh interpreter. The child calls the
shared runtime (`pipec.backends.runtime.main`) with the same arguments a remote engine would pass,
so inputs and outputs go through the artifact store exactly as elsewhere. The child leads its own
process group: a timeout (or the end of the step) kills the group, grandchildren included, and
the child dies with the runner (Linux parent-death signal) so a killed runner leaves no orphans.

Secret values are masked at the file-descriptor level: the step's stdout and stderr (and those of
anything it spawns) go through a pipe that a thread in the child filters before the log file.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MASK = b"***"
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Launch:
    """Everything a step process needs: runtime arguments, environment, log file, masks."""

    argv: list[str]
    env: Mapping[str, str]
    log_path: Path
    cwd: Path
    mask: Sequence[str] = ()


@dataclass(eq=False)
class StepProcess:
    """A running step process (the leader of its own process group)."""

    pid: int
    started: float
    deadline: float | None
    pidfd: int | None = None
    timed_out: bool = False
    extra: dict[str, object] = field(default_factory=dict)


def start(launch: Launch, timeout: float | None) -> StepProcess:
    """Fork a child that runs the step; return at once."""
    launch.log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, reported through its exit code
        os._exit(_child(launch))
    started = time.monotonic()
    pidfd: int | None = None
    if hasattr(os, "pidfd_open"):
        with contextlib.suppress(OSError):
            pidfd = os.pidfd_open(pid)
    deadline = started + timeout if timeout else None
    return StepProcess(pid=pid, started=started, deadline=deadline, pidfd=pidfd)


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
        masker = _redirect_output(log_fd, [s.encode() for s in launch.mask if s])
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
    pending = b""
    while True:
        chunk = os.read(read_fd, 65536)
        pending += chunk
        for secret in ordered:
            pending = pending.replace(secret, MASK)
        if not chunk:
            os.write(log_fd, pending)
            break
        # Hold back a tail that could be the start of a secret completed by the next read.
        cut = max(0, len(pending) - keep)
        os.write(log_fd, pending[:cut])
        pending = pending[cut:]
    os.close(read_fd)
    os.close(log_fd)


def mask_text(text: str, secrets: Sequence[str]) -> str:
    """Replace every secret value in `text` (for messages the runner itself writes)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK.decode())
    return text


def wait(processes: Sequence[StepProcess], timeout: float) -> list[tuple[StepProcess, int]]:
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


def kill_tree(process: StepProcess) -> None:
    """SIGKILL the step's whole process group (the step and everything it started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def describe_exit(code: int) -> str:
    """Human words for an exit code."""
    if code >= 0:
        return f"exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"killed by {name}"
