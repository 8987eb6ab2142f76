"""Who holds a run: the identity of a runner process, and whether that process still lives.

A run has one owner at a time (`MetadataStore.claim_run`). An owner is recorded as its pid, its
host and its *start*: the boot id and the process's start time since boot (Linux's
`/proc/<pid>/stat`), so that a later process that got the same pid is not taken for the owner.
Where the system does not say when a process started, `start` is None and only the pid is
checked (a reused pid then looks like a live owner: the safe mistake). A process on another
host cannot be checked from here; its lock holds until that process releases it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from pipec.backends.runner.records import Owner

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def current(role: str) -> Owner:
    """This process as the owner of a run (`role`: "run" or "resume")."""
    pid = os.getpid()
    return Owner(pid=pid, host=socket.gethostname(), start=start_of(pid), role=role)


def start_of(pid: int) -> str | None:
    """`<boot id>:<start time in clock ticks>` of a live process; None when unknown."""
    fields = _stat(pid)
    return None if fields is None else _start(fields)


def alive(owner: Owner) -> bool | None:
    """Whether the owner process still runs: True, False, or None when it cannot be told (it
    ran on another host)."""
    if owner.host != socket.gethostname():
        return None
    fields = _stat(owner.pid)
    if fields is not None:
        if fields[0] == "Z":  # ended, not yet reaped by its parent
            return False
        return owner.start is None or _start(fields) == owner.start
    if Path("/proc/self/stat").exists():
        return False  # /proc works here and has no such process
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start(fields: list[str]) -> str:
    try:
        boot = _BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        boot = "?"
    # `stat` fields after the command name: state is field 3, starttime field 22.
    return f"{boot}:{fields[19]}"


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (None: no such process, or no
    /proc)."""
    with contextlib.suppress(OSError, IndexError):
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
        return text.rsplit(")", 1)[1].split()
    return None
