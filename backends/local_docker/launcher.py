"""The first process of every step container: start the step runtime, and end it with the runner.

This file's source is the container's command (`python3 -c SOURCE`), so it uses the standard
library only and works with any pipec (or none) in the image. The runner sends one JSON line on
the container's stdin (attached, never stored in the container's configuration):

    {"argv": ["python3", "-m", "pipec.backends.runtime", ...], "env": {...}, "cwd": "..."}

`env` holds the step's environment, its secret values and the `PIPEC_*` variables. The launcher
starts the step in a child process (its own process group) with the image's environment plus
`env`, stdin from /dev/null, stdout and stderr the container's (the runner reads them through the
attach stream). It keeps reading stdin: when that closes, the runner has gone (killed, even with
SIGKILL), so it kills the step and ends, and the container stops instead of running on
unwatched. Its exit code is the step's, or 128 + N when the step died of signal N.

The child is usually a fork of this interpreter that runs the module as `python -m` would
(`sys.argv`, `sys.path[0]`, `__main__`, a normal interpreter exit with atexit handlers): a
second interpreter start per step is what most of a trivial step's time went to. It execs
`argv` in a fresh interpreter instead when `argv` is not `[this interpreter, "-m", MODULE, ...]`
(another interpreter, or a wrapper in its place), or when `env` sets a variable that only a
starting process or interpreter reads (`read_at_start`: `PYTHONHASHSEED`, the locale, the
loader's `LD_*`, ...), so those apply as on every other engine.

Before it reads the request, the launcher imports the step runtime (`preload`; pipec's own
modules, which read no environment when imported, as the local target's preloading relies on
too), so that a container made ahead of its step (see the executor) has done that work by the
time the step is launched. An image whose runtime does not import is not this file's business:
the step's own import says why, in its log.
"""

import contextlib
import json
import os
import signal
import sys
import threading

GONE = 137  # the exit code of a step ended because its runner went away (128 + SIGKILL)
# Variables read when a process or an interpreter starts, by name (PATH: which interpreter
# argv[0] is; HOME: the user's site-packages; TZ: the time module's zone) and by family (the
# interpreter's own options, the locale, the dynamic loader, the C library's allocator).
STARTUP_NAMES = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "GLIBC_TUNABLES"})
STARTUP_PREFIXES = ("PYTHON", "LC_", "LD_", "MALLOC_")


def preload() -> None:
    """Import what every step's runtime imports (nothing when it is not there, see above)."""
    try:
        import runpy  # noqa: F401  (what `_run_module` uses)

        from pipec.backends.runtime import core, invocation  # noqa: F401

        invocation.warm_up()
    except BaseException:  # the step imports it again and reports the error
        pass


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


def read_at_start(env: dict[str, str]) -> list[str]:
    """The names in `env` that a fresh interpreter would see and a fork of this one would not."""
    return sorted(n for n in env if n in STARTUP_NAMES or n.startswith(STARTUP_PREFIXES))


def _which(program: str) -> str | None:
    """The file `program` names, found on this process's PATH as `execvp` would."""
    if "/" in program:
        return os.path.abspath(program)
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(folder or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    return None


def runs_here(argv: list[str], step_env: dict[str, str]) -> bool:
    """Whether a fork of this interpreter can run `argv` as a fresh one would (see above)."""
    if len(argv) < 3 or argv[1] != "-m" or read_at_start(step_env):
        return False
    return _which(argv[0]) == os.path.abspath(sys.executable)


def _start(argv: list[str], step_env: dict[str, str], cwd: str) -> int:
    here = runs_here(argv, step_env)
    env = dict(os.environ)
    env.update(step_env)
    sys.stdout.flush()  # a fork copies what is buffered: nothing must be written twice
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.setpgid(0, 0)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
            os.chdir(cwd)
            if not here:
                os.execvpe(argv[0], argv, env)
        except BaseException as exc:
            os.write(2, f"pipec launcher: cannot start {argv[0]!r}: {exc}\n".encode())
            os._exit(127)
        _run_module(argv, step_env)  # ends this process as `python -m` would end
    return pid


def _run_module(argv: list[str], step_env: dict[str, str]) -> None:
    """Run `argv`'s `-m MODULE` in this (forked) interpreter; SystemExit ends it with the
    module's exit code, through the interpreter's normal exit."""
    import runpy

    os.environ.update(step_env)
    sys.argv = [argv[0], *argv[3:]]  # run_module puts the module's file in sys.argv[0]
    if sys.path and sys.path[0] == "":  # `-c` put "" there; `-m` puts its starting directory
        sys.path[0] = os.getcwd()
    runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
    sys.exit(0)


def _end_with_the_runner(pid: int) -> None:
    """Wait for stdin to close, then kill the step's process group and leave."""
    while os.read(0, 65536):
        pass
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    os._exit(GONE)


def main() -> None:
    """Run one step (see the module docstring); returns only in the step's own process."""
    preload()
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
