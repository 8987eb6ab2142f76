"""The live view in a real terminal: `pipec run` under a pseudo-terminal draws the rich view
(counts and running steps) and ends with the summary; without a terminal it prints plain lines."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

PIPEC = [sys.executable, "-m", "pipec.cli"]
PIPELINE = '''
import time
from pipec import foreach, pipeline, step

@step
def nap(i: int) -> int:
    time.sleep(0.3)
    return i

@pipeline
def naps():
    with foreach([1, 2, 3, 4]) as i:
        nap(i=i)
'''


def _run_in_pty(argv: list[str], cwd: Path, timeout: float = 120.0) -> tuple[int, str]:
    """Run a command with a pseudo-terminal as stdin/stdout/stderr; return (exit code, output)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the command
        os.chdir(cwd)
        os.environ.update({"COLUMNS": "100", "LINES": "40", "TERM": "xterm-256color"})
        os.execv(argv[0], argv)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode("utf-8", "replace")


def test_live_view_in_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "naps.py").write_text(PIPELINE)
    command = [*PIPEC, "run", "naps.py", "--parallelism", "2"]
    code, output = _run_in_pty(command, tmp_path)
    assert code == 0, output
    assert "\x1b[" in output, "a terminal gets ANSI drawing, not plain lines"
    assert "running" in output and "nap[3]" in output
    assert "succeeded" in output


def test_plain_lines_without_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "naps.py").write_text(PIPELINE)
    done = subprocess.run(
        [*PIPEC, "run", "naps.py"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stderr
    assert "nap[0]: running" in done.stderr and "nap[3]: succeeded" in done.stderr
