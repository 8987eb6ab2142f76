"""What a worker forked for one step attempt does: point its output at the log (masking secret
values), run the step through the shared runtime, and return the exit code. When asked, it also
reports the library modules its step imported (`local.preload`), for the supervisor to preload.

The step's stdout and stderr (and those of anything it spawns) go to the log through a pipe that
a thread here filters when the step has secrets, so a secret value never reaches the file.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path

from pipec.backends import runtime
from pipec.backends.local import preload
from pipec.backends.runner.executor import Launch
from pipec.backends.runner.secrets import MASK
from pipec.backends.runtime.invocation import Invocation, InvocationError, parse


@dataclass(frozen=True)
class Attempt:
    """What the supervisor hands a worker: only what the worker reads (the supervisor unpickles
    it between two forks, and every page it writes then is copied: the plan step stays home).
    `report`: where to report the step's imports (None: the executor already knows them, or
    learns nothing in this run). `parsed`: `argv` parsed by the runner (None: the worker parses
    it, and says what is wrong with it in the step's log)."""

    argv: tuple[str, ...]
    env: dict[str, str]
    log_path: str
    cwd: str
    masks: tuple[str, ...] = ()
    report: Path | None = None
    parsed: Invocation[str] | None = None

    @classmethod
    def of(cls, launch: Launch, report: Path | None) -> Attempt:
        """The attempt of `launch`, its command line parsed here (in the runner, once)."""
        argv = tuple(launch.argv)
        try:
            parsed: Invocation[str] | None = parse(argv)
        except InvocationError:
            parsed = None
        env, masks = dict(launch.env), tuple(launch.masks)
        return cls(argv, env, str(launch.log_path), str(launch.cwd), masks, report, parsed)


_stood_by = False
"""Whether `stand_by` prepared this process."""


def stand_by() -> None:  # pragma: no cover - runs in the forked worker
    """What every attempt's process sets up alike, done while the worker waits for its attempt
    (so not between one step's end and the next one's start): stdin from /dev/null, and fresh
    stream objects for fds 1 and 2 (a lock another runner thread held at fork time is not ours;
    `run_attempt` points the fds at the step's log). Left to `run_attempt` if it fails here."""
    global _stood_by
    with contextlib.suppress(OSError):
        _standard_streams()
        _stood_by = True


def _standard_streams() -> None:  # pragma: no cover - runs in the forked worker
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)


def run_attempt(attempt: Attempt) -> int:  # pragma: no cover - runs in the forked worker
    """Run one attempt of a step in this (forked) process; return its exit code."""
    masker: threading.Thread | None = None
    before: set[str] | None = None
    try:
        # The supervisor's signal handlers and wakeup fd were reset when it forked this worker.
        log_fd = os.open(attempt.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        masker = _redirect_output(log_fd, [s.encode() for s in attempt.masks if s])
        if not _stood_by:
            _standard_streams()
        os.environ.update(attempt.env)
        os.chdir(attempt.cwd)
        if attempt.report is not None:
            before = set(sys.modules)
        code = runtime.main(attempt.argv, attempt.parsed)
    except BaseException:
        traceback.print_exc()
        code = 1
    if before is not None and code == 0:
        _report_imports(attempt.report, before, Path(attempt.cwd))
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    if masker is not None:
        os.close(1)
        os.close(2)
        masker.join(timeout=5)
    return code


def _report_imports(
    report: Path | None, before: set[str], project_root: Path
) -> None:  # pragma: no cover - runs in the forked worker
    """Tell the executor which library modules the step imported, and how many threads this
    process would fork with (more than one: nothing here is fit to preload)."""
    with contextlib.suppress(Exception):
        modules = preload.learned(before, project_root)
        if report is not None:  # also when it is empty: the executor stops asking
            threads = preload.settled_threads() if modules else 0
            preload.write_report(report, modules, threads)


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
