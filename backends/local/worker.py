"""What a worker forked for one step attempt does: point its output at the log (masking secret
values), run the step through the shared runtime, and return the exit code.

The step's stdout and stderr (and those of anything it spawns) go to the log through a pipe that
a thread here filters when the step has secrets, so a secret value never reaches the file.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import threading
import traceback

from pipec.backends.runner.executor import Launch
from pipec.backends.runner.secrets import MASK


def run_attempt(launch: Launch) -> int:  # pragma: no cover - runs in the forked worker
    """Run one attempt of a step in this (forked) process; return its exit code."""
    masker: threading.Thread | None = None
    try:
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
