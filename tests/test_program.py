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


CHAIN = """\
from pipec import pipeline, step


@step
def inc(x: int) -> int:
    return x + 1


@pipeline
def chain() -> None:
    inc(inc(0))
"""


def test_a_command_leaves_the_metadata_store_closed(tmp_path: Path) -> None:
    """A store no command closed is closed by the exit handlers: SQLite folds its write-ahead
    log into the database file, which holds every run on its own (as after a normal exit)."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "p"\n')
    (tmp_path / "chain.py").write_text(CHAIN)
    for command in (["run", "chain.py"], ["runs", "list"], ["runs", "gc", "--keep", "1"]):
        done = subprocess.run(
            [str(PIPEC), *command], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        store = tmp_path / ".pipec"
        assert sorted(p.name for p in store.glob("metadata.db*")) == ["metadata.db"], command
