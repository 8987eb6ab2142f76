"""The `pipec` program (the console script): the commands of `pipec.cli`, then an exit that
does not tear the interpreter down (`leave`)."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import NoReturn


def command_line() -> NoReturn:
    """Run `pipec ARGS` and exit with its status."""
    from pipec.cli import main

    try:
        main.main(prog_name="pipec")
        status: object = 0
    except SystemExit as exc:
        status = exc.code
    leave(status)


def leave(status: object) -> NoReturn:
    """Exit as `sys.exit(status)` would (None is 0, an int is itself, anything else is printed
    on stderr and is 1): non-daemon threads are waited for and the `atexit` handlers run, but
    the interpreter is not torn down. Freeing every module a command loaded (pydantic's schemas,
    the IR models, SQLite, rich) takes about a tenth of a second and leaves nothing behind that
    those handlers do not."""
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    if status is None:
        code = 0
    elif isinstance(status, int):
        code = status
    else:
        with contextlib.suppress(Exception):
            print(status, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe (`pipec ... | head`) loses nothing
            stream.flush()
    os._exit(code & 0xFF)
