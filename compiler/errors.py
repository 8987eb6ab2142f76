"""Front-end errors: misuse of the authoring API, reported as diagnostics with the user's line.

Cheap to import (no IR models): step modules import it through `pipec.dsl` in every step's
interpreter, where nothing is traced.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pipec.ir  # its files are pipec's own too (is_pipec_file); the package loads no models

if TYPE_CHECKING:
    from pipec.ir.model import Location


class PipecUsageError(Exception):
    """The authoring API was used in a way pipec cannot express (raised while tracing).

    `code` and `hint` become the diagnostic's; `location` is filled from the user's frame.
    """

    def __init__(
        self, code: str, message: str, hint: str = "", location: Location | None = None
    ) -> None:
        self.code = code
        self.message = message
        self.hint = hint
        self.location = location
        super().__init__(message)


_PIPEC_DIRS = tuple(
    str(Path(module.__file__).resolve().parent)
    for module in (sys.modules[__name__], pipec.ir)
    if module.__file__
)


def is_pipec_file(filename: str) -> bool:
    """Whether a traceback frame is pipec's own code (the front end or the IR), not the user's."""
    return filename.startswith(_PIPEC_DIRS)


def caller_location(root: Path | None, depth: int = 2) -> Location:
    """The first frame outside pipec, `depth` frames up or more: where the user wrote the call."""
    from pipec.ir.model import Location  # only tracing asks for one: the models load with it

    frame = sys._getframe(depth)
    while frame.f_back is not None and is_pipec_file(frame.f_code.co_filename):
        frame = frame.f_back
    return Location(file=relative_file(frame.f_code.co_filename, root), line=frame.f_lineno)


@functools.lru_cache(maxsize=1024)
def relative_file(filename: str, root: Path | None) -> str:
    """A file name relative to the project root, with `/` separators (deterministic output).

    Cached: every traced call asks for its file, and resolving a path touches the disk.
    """
    path = Path(filename)
    if root is not None and path.is_absolute():
        # A file outside the project is still named relative to it (`../lib/x.py`), never by an
        # absolute path, which would differ between machines.
        return Path(os.path.relpath(path.resolve(), root)).as_posix()
    return path.as_posix()

