"""A small supervisor per step attempt that ends the attempt's whole process tree.

A process group is not enough to stop what a step started: anything that calls `setsid` (the
`setsid` command, `start_new_session=True`, a daemon's double fork) leaves the group, and a
runner killed with SIGKILL cannot kill anything at all. So each attempt runs under a supervisor,
forked by the runner, which

* makes itself the *child subreaper* of its subtree (Linux `PR_SET_CHILD_SUBREAPER`): a process
  of the step whose parent dies is re-parented to the supervisor, not to init, so every process
  the step started stays a descendant of the supervisor, whatever session or group it is in;
* forks the worker that runs the step, and waits for it;
* when the worker ends, when the runner asks (SIGTERM: a timeout, an interrupt), or when the
  runner dies (the parent-death signal, SIGTERM), sends SIGKILL to every descendant (found
  through /proc) and reaps them until it has no child left; then it ends the way the worker
  ended (its exit code, or the same signal), which is what the runner reports.

Elsewhere (no subreaper, no /proc) the supervisor kills the worker's process group: a step's
processes that leave the group are not stopped there, which `docs/guarantees.md` says.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_STOP = {signal.SIGTERM, signal.SIGHUP, signal.SIGINT}
_WATCHED = {*_STOP, signal.SIGCHLD}


def supervise(run_worker: Callable[[], int]) -> NoReturn:  # pragma: no cover - forked child
    """Run `run_worker()` in a child and end the whole tree with it (see the module docstring).
    Called in the process the runner forked; never returns."""
    runner = os.getppid()
    os.setsid()  # a terminal's Ctrl-C reaches the runner only, which then stops the steps
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)
    for signum in _WATCHED:
        signal.signal(signum, signal.SIG_DFL)
    original = signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
    if os.getppid() != runner:  # the runner died before the parent-death signal was set
        os._exit(128 + signal.SIGKILL)
    me = os.getpid()
    worker = os.fork()
    if worker == 0:
        code = 1
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, original)
            os.setpgid(0, 0)
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != me:
                os._exit(128 + signal.SIGKILL)
            code = run_worker()
        finally:
            os._exit(code)
    status = _wait_for(worker)
    _end_tree(worker)
    _end_like(status)


def _wait_for(worker: int) -> int | None:  # pragma: no cover - forked child
    """The worker's wait status, or None when the supervisor was told to stop first."""
    while True:
        received = signal.sigwaitinfo(_WATCHED)
        if received.si_signo in _STOP:
            return None
        with contextlib.suppress(ChildProcessError):
            while True:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                if pid == worker:
                    return status


def _end_tree(worker: int) -> None:  # pragma: no cover - forked child
    """SIGKILL the worker's group and every descendant, and reap until no child is left. Killed
    processes' children come to this process (the subreaper), so each round finds the rest."""
    with contextlib.suppress(OSError):
        os.killpg(worker, signal.SIGKILL)
    me = os.getpid()
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no child, so no descendant: every one would be below a child
        if pid:
            continue
        for victim in descendants(me):
            with contextlib.suppress(OSError):
                os.kill(victim, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(-1, 0)


def _end_like(status: int | None) -> NoReturn:  # pragma: no cover - forked child
    """Exit as the worker did: its exit code, or killed by its signal (SIGKILL when stopped)."""
    if status is not None and os.WIFEXITED(status):
        os._exit(os.WEXITSTATUS(status))
    signum = os.WTERMSIG(status) if status is not None else signal.SIGKILL
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the worker's core is enough
    with contextlib.suppress(OSError, ValueError):
        signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
        os.kill(os.getpid(), signum)
    os._exit(128 + signum)


def descendants(root: int) -> list[int]:
    """Every process below `root` (by parent pid, through /proc); empty without /proc."""
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    with contextlib.suppress(OSError):
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                text = (entry / "stat").read_text(encoding="utf-8", errors="replace")
                parent = int(text.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # ended meanwhile
            children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _prctl(option: int, value: int) -> None:  # pragma: no cover - forked child
    """Linux prctl(2); a no-op elsewhere (the supervisor then only kills the worker's group)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(option, value, 0, 0, 0)
