"""The step containers' launcher, run here as the container runs it (`python -c SOURCE`, the
request on stdin): a module started in a fork of the launcher's own interpreter sees what a fresh
`python -m` would, a fresh interpreter is still started when a fork could not see the same, and
the step ends with the runner either way. No Docker: the launcher uses the standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pipec.backends.local_docker import launcher
from pipec.backends.local_docker.executor import LAUNCHER_SOURCE

# What a step's process can tell about how it was started and how it will end.
PROBE = """\
import atexit, json, os, sys, threading, time

def _late():
    time.sleep(0.2)
    print("thread joined", flush=True)

atexit.register(lambda: print("atexit ran", flush=True))
threading.Thread(target=_late).start()  # not a daemon: the interpreter's exit waits for it
print(json.dumps({
    "forked": "-c" in sys.orig_argv,
    "name": __name__,
    "argv": sys.argv,
    "path0": sys.path[0],
    "cwd": os.getcwd(),
    "env": os.environ.get("STEP_VALUE"),
    "stdin": sys.stdin.read(),
    "group": os.getpgrp() == os.getpid(),
    "hash": hash("pipec"),
}), flush=True)
sys.exit(int(sys.argv[1]))
"""


def _launch(
    tmp_path: Path, argv: list[str], env: dict[str, str], keep_stdin: bool = True
) -> tuple[int, str, subprocess.Popen[bytes]]:
    """Run the launcher with one request; (exit code, its output, the process)."""
    output = tmp_path / "output.txt"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER_SOURCE],
            stdin=subprocess.PIPE,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd="/",
        )
        assert process.stdin is not None
        request = {"argv": argv, "env": env, "cwd": str(tmp_path)}
        process.stdin.write(json.dumps(request).encode() + b"\n")
        process.stdin.flush()
        if not keep_stdin:
            return -1, "", process
        code = process.wait(timeout=60)
        process.stdin.close()
    return code, output.read_text(), process


def _seen(text: str) -> dict[str, Any]:
    line = next(line for line in text.splitlines() if line.startswith("{"))
    found: dict[str, Any] = json.loads(line)
    return found


def test_a_module_run_in_a_fork_sees_what_a_fresh_python_m_sees(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(PROBE)
    argv = [sys.executable, "-m", "probe", "3", "more"]
    forked_code, forked, _ = _launch(tmp_path, argv, {"STEP_VALUE": "x"})
    fresh_code, fresh, _ = _launch(tmp_path, argv, {"STEP_VALUE": "x", "PYTHONHASHSEED": "7"})
    assert forked_code == fresh_code == 3, (forked, fresh)
    seen_forked, seen_fresh = _seen(forked), _seen(fresh)
    assert seen_forked.pop("forked") is True, "a plain step must not start a second interpreter"
    assert seen_fresh.pop("forked") is False, "PYTHONHASHSEED needs a fresh interpreter"
    expected_hash = subprocess.run(
        [sys.executable, "-c", "print(hash('pipec'))"],
        env={**os.environ, "PYTHONHASHSEED": "7"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert seen_fresh.pop("hash") == int(expected_hash)
    seen_forked.pop("hash")
    assert seen_forked == seen_fresh
    assert seen_forked == {
        "name": "__main__",
        "argv": [str(tmp_path / "probe.py"), "3", "more"],
        "path0": str(tmp_path),
        "cwd": str(tmp_path),
        "env": "x",
        "stdin": "",
        "group": True,
    }
    for text in (forked, fresh):  # the interpreter's normal exit: threads joined, atexit run
        assert text.index("thread joined") < text.index("atexit ran"), text


def test_startup_variables_and_other_interpreters_get_a_fresh_one(tmp_path: Path) -> None:
    plain = {"PIPEC_RUN_ID": "r", "API_KEY": "s", "OMP_NUM_THREADS": "1"}
    assert launcher.read_at_start(plain) == []
    assert launcher.read_at_start(
        {"PYTHONPATH": "/x", "LC_ALL": "C", "LANG": "C", "LD_LIBRARY_PATH": "/l", "TZ": "UTC"}
    ) == ["LANG", "LC_ALL", "LD_LIBRARY_PATH", "PYTHONPATH", "TZ"]
    (tmp_path / "probe.py").write_text(PROBE)
    wrapper = tmp_path / "wrapped-python"  # a stand-in in the interpreter's place
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    code, text, _ = _launch(tmp_path, [str(wrapper), "-m", "probe", "0"], {})
    assert code == 0, text
    assert _seen(text)["forked"] is False
    code, text, _ = _launch(tmp_path, [sys.executable, str(tmp_path / "probe.py"), "0"], {})
    assert code == 0, text
    assert _seen(text)["forked"] is False


def test_a_forked_step_dies_with_the_runner_and_reports_its_signal(tmp_path: Path) -> None:
    (tmp_path / "sleeper.py").write_text(
        "import os, pathlib, time\npathlib.Path('pid').write_text(str(os.getpid()))\n"
        "time.sleep(60)\n"
    )
    _, _, process = _launch(tmp_path, [sys.executable, "-m", "sleeper"], {}, keep_stdin=False)
    deadline = time.monotonic() + 30
    while not (tmp_path / "pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int((tmp_path / "pid").read_text())
    assert process.stdin is not None
    process.stdin.close()  # the runner went away
    assert process.wait(timeout=30) == launcher.GONE
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
    (tmp_path / "self_kill.py").write_text("import os, signal\nos.kill(os.getpid(), 15)\n")
    code, text, _ = _launch(tmp_path, [sys.executable, "-m", "self_kill"], {})
    assert code == 128 + signal.SIGTERM, text


def _alive(pid: int) -> bool:
    """Running (a zombie left for its new parent to reap has ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status
