"""The first process of every step container: start the step runtime, and end it with the runner.

This file's source is the container's command (`python3 -c SOURCE`), so it uses the standard
library only and works with any pipec (or none) in the image. The runner sends one JSON line on
the container's stdin (attached, never stored in the container's configuration):

    {"argv": ["python3", "-m", "pipec.backends.runtime", ...], "env": {...}, "cwd": "..."}

`env` holds the step's environment, its secret values and the `PIPEC_*` variables. The launcher
starts `argv` in a child process with the image's environment plus `env` (a fresh interpreter, so
variables read at interpreter start, such as `PYTHONHASHSEED`, apply as on every other engine),
stdin from /dev/null, stdout and stderr the container's (the runner reads them through the
attach stream). It keeps reading stdin: when that closes, the runner has gone (killed, even with
SIGKILL), so it kills the step and ends, and the container stops instead of running on
unwatched. Its exit code is the step's, or 128 + N when the step died of signal N.
"""

import contextlib
import json
import os
import signal
import sys
import threading

GONE = 137  # the exit code of a step ended because its runner went away (128 + SIGKILL)


def _read_request() -> tuple[list[str], dict[str, str], str] | None:
    """(argv, env, cwd) from the request line on fd 0, read unbuffered (so nothing after it is
    swallowed); None when stdin closed first."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(0, 65536)
        if not chunk:
            return None
        data += chunk
    request = json.loads(data)
    argv = [str(arg) for arg in request["argv"]]
    env = {str(name): str(value) for name, value in request["env"].items()}
    return argv, env, str(request["cwd"])


def _start(argv: list[str], step_env: dict[str, str], cwd: str) -> int:
    env = dict(os.environ)
    env.update(step_env)
    pid = os.fork()
    if pid == 0:
        try:
            os.setpgid(0, 0)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.chdir(cwd)
            os.execvpe(argv[0], argv, env)
        except BaseException as exc:
            os.write(2, f"pipec launcher: cannot start {argv[0]!r}: {exc}\n".encode())
        os._exit(127)
    return pid


def _end_with_the_runner(pid: int) -> None:
    """Wait for stdin to close, then kill the step's process group and leave."""
    while os.read(0, 65536):
        pass
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    os._exit(GONE)


def main() -> None:
    """Run one step (see the module docstring); never returns."""
    request = _read_request()
    if request is None:
        os._exit(GONE)
    pid = _start(*request)
    threading.Thread(target=_end_with_the_runner, args=(pid,), daemon=True).start()
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    sys.stdout.flush()
    os._exit(128 - code if code < 0 else code)


if __name__ == "__main__":
    main()
