"""The `pipec` program exits as the interpreter would, without tearing it down: the status a
command gives, `atexit` handlers run, non-daemon threads waited for, output flushed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PIPEC = Path(sys.executable).with_name("pipec")

LEAVING = """\
import atexit, sys, threading, time
from pipec.program import leave

def late() -> None:
    time.sleep(0.2)
    print("thread done", flush=True)

atexit.register(print, "atexit ran")
threading.Thread(target=late).start()
sys.stdout.write("buffered, not flushed")
leave({status})
"""


@pytest.mark.parametrize(
    ("status", "code", "stderr"),
    [("None", 0, ""), ("0", 0, ""), ("3", 3, ""), ("300", 44, ""), ("'no good'", 1, "no good\n")],
)
def test_leave_exits_as_sys_exit_would(status: str, code: int, stderr: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", LEAVING.format(status=status)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == code
    assert done.stderr == stderr
    assert done.stdout == "buffered, not flushedthread done\natexit ran\n"


def test_the_program_exits_with_the_commands_status(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(PIPEC), "validate", "missing.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "no such file: missing.py" in done.stderr and "Traceback" not in done.stderr
    version = subprocess.run([str(PIPEC), "--version"], capture_output=True, text=True, check=False)
    assert version.returncode == 0 and version.stdout.startswith("pipec, version")
