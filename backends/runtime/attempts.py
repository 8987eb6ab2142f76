"""The runtime's own timeout and retries, for engines that cannot keep them (`--timeout`,
`--retries`, `--retry-delay`; vertex has no step timeout, GitHub Actions no retries).

With either option, `main` does not run the step in its own process. It runs each attempt as a
child `python -m pipec.backends.runtime` (the same command without those options), in a session
and process group of its own, and

* is the *child subreaper* (Linux `PR_SET_CHILD_SUBREAPER`) of everything the attempt starts, so a
  process that leaves the attempt's group (`setsid`, `start_new_session=True`, a daemon's double
  fork) is still below it and is still reached;
* when the attempt outlives `--timeout`: freezes its whole tree with SIGSTOP until no new process
  appears, then SIGKILLs it (nothing can fork its way out, and a process that ignores SIGTERM is
  not asked), prints one `pipec runtime: error: ... timed out after Ns` line, and counts the
  attempt as failed with exit code 124 (`EXIT_TIMED_OUT`, the convention of coreutils' `timeout`);
* after every attempt kills what it left running (a retry never meets the previous attempt's
  processes; the step ends when its function returns, as on the local target) and removes the
  staging folders of outputs it was killed while writing;
* retries a failed attempt (any exit code but 0) up to `--retries` times, waiting `--retry-delay`
  seconds before each retry: the local target's meaning (`retries=2` is at most three attempts);
* on SIGTERM, SIGINT or SIGHUP (the engine cancelling the step) kills the attempt's tree and exits
  with 128 + the signal's number.

Why a child process and not a watchdog thread in the step's own process: a thread cannot stop a
main thread blocked in C code, and killing the step's process group from inside would kill the
runtime before it could say why; a fresh interpreter per attempt also gives a retry clean module
state, as the local target's fork per attempt does. Outputs stay correct because only the attempt
writes them, atomically (a local output is a staging folder renamed into place, a remote one
exists once its `meta.json`, written last, does): a killed attempt leaves no output behind. The
price is one interpreter start per attempt, paid only by steps that use these options.

Where there is no /proc or subreaper (not Linux), a timeout kills the attempt's process group
only; the engines that use these options run steps in Linux containers.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from pipec.backends.runtime import store
from pipec.backends.runtime.invocation import RUNTIME_MODULE, Invocation, seconds

EXIT_TIMED_OUT = 124
_ATTEMPT_LINE = re.compile(r"pipec runtime: attempt (\d+) of \d+")
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class _Stopped(Exception):
    """The engine asked the runtime to stop (a signal) while an attempt ran."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def run_attempts(invocation: Invocation[str]) -> int:
    """Run the step's attempts in child processes (see the module docstring); the exit code is
    the last attempt's (0, 1, 2, or `EXIT_TIMED_OUT`), or 128 + a signal that stopped it."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    command = [sys.executable, *_python_options(), "-m", RUNTIME_MODULE]
    command += [str(arg) for arg in invocation.unsupervised().argv()]
    total = invocation.retries + 1
    previous = {signum: signal.getsignal(signum) for signum in _STOP_SIGNALS}
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _raise_stopped)
    code = 1
    try:
        for attempt in range(1, total + 1):
            if attempt > 1:
                _say(
                    f"attempt {attempt} of {total}"
                    + (f" in {seconds(invocation.retry_delay)}s" if invocation.retry_delay else "")
                )
                time.sleep(invocation.retry_delay)
            code = _attempt(command, invocation, f"(attempt {attempt} of {total})", attempt)
            if code == 0:
                break
    except _Stopped as stop:
        name = signal.Signals(stop.signum).name
        _say(f"stopped by {name}; the step's processes were killed")
        return 128 + stop.signum
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code


def attempt_number(line: str) -> int | None:
    """N when `line` is the runtime's `attempt N of M` announcement of a retry (engines' logs are
    read for it: act's, to count the attempts of a job)."""
    found = _ATTEMPT_LINE.match(line.strip())
    return int(found.group(1)) if found else None


def _attempt(command: list[str], invocation: Invocation[str], which: str, attempt: int) -> int:
    """One attempt: start it, keep it to the timeout, end everything it left; its exit code."""
    # `pipec.context().attempt` counts the runtime's own attempts when it retries
    # (runtime/context.py); with a timeout only, the engine's count (if any) stays.
    env = dict(os.environ)
    if invocation.retries:
        env["PIPEC_ATTEMPT"] = str(attempt)
    process = subprocess.Popen(
        command, start_new_session=True, preexec_fn=_die_with_parent, env=env
    )
    try:
        try:
            code = process.wait(timeout=invocation.timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(os.getpid(), process.pid)
            process.wait()
            assert invocation.timeout is not None
            _say(
                f"error: {invocation.component} timed out after {seconds(invocation.timeout)}s "
                f"{which}; every process it started was killed",
            )
            code = EXIT_TIMED_OUT
    except _Stopped:
        _kill_tree(os.getpid(), process.pid)
        process.wait()
        raise
    finally:
        _end_leftovers()
        _remove_staging(invocation)
    return code if code >= 0 else 128 - code  # killed by a signal: the shell's convention


def _kill_tree(root: int, group: int | None = None) -> None:
    """SIGSTOP everything below `root` until a pass finds nothing new (a stopped process cannot
    fork), then SIGKILL it all; `group` (the attempt's process group) first and last, which
    reaches its members where /proc shows nothing."""
    frozen: list[int] = []
    if group is not None:
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGSTOP)
    seen: set[int] = set()
    while True:
        fresh = [pid for pid in descendants(root) if pid not in seen]
        if not fresh:
            break
        for pid in fresh:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGSTOP)
            seen.add(pid)
            frozen.append(pid)
    for pid in frozen:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    if group is not None:
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGKILL)


def _end_leftovers() -> None:
    """Kill whatever is still below this process (what an attempt started and did not wait for,
    re-parented here) and reap it all."""
    _kill_tree(os.getpid())
    with contextlib.suppress(ChildProcessError):
        while True:
            os.waitpid(-1, 0)


def descendants(root: int) -> list[int]:
    """Every process below `root`, by parent pid through /proc (empty without /proc)."""
    below: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text(encoding="utf-8", errors="replace")
                parent = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # ended meanwhile
            below.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    pending = [root]
    while pending:
        for child in below.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _remove_staging(invocation: Invocation[str]) -> None:
    """The staging folders of local outputs a killed attempt was writing (remote outputs without
    their `meta.json` do not exist, and the next write replaces them)."""
    for dest in invocation.outputs.values():
        if not store.is_remote(dest):
            store.remove_staging(store.local_path(dest).parent, recursive=False)


def _python_options() -> list[str]:
    """The interpreter's `-X` options (KFP's code hash among them), kept for the attempt."""
    found: list[str] = []
    for key, value in sys._xoptions.items():
        found += ["-X", key if value is True else f"{key}={value}"]
    return found


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signum)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # If the runtime itself is killed (SIGKILL cannot be caught), the attempt does not live on.
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _say(text: str) -> None:
    print(f"pipec runtime: {text}", file=sys.stderr, flush=True)


def _prctl(option: int, value: int) -> None:
    """Linux prctl(2); a no-op elsewhere."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
