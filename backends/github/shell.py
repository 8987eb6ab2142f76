"""A job's `run:` line: the runtime's argv as one bash command, with a few known variables.

Every word is single-quoted by `shlex.quote` except the references to the variables the workflow
itself sets (`VARIABLES`), which are written as `"${NAME}"` so bash expands them and nothing else.
No value ever enters the line: values arrive through `env:` (GitHub's script-injection guidance),
so the line holds only ids, paths from the settings and these references.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

VARIABLES = (
    "PIPEC_ARTIFACT_ROOT",
    "PIPEC_RUN_ID",
    "PIPEC_INDEX",
    "RUNNER_TEMP",
    "PIPEC_CACHE_KEY",
)
_MARK = "\x00"  # no argv word can hold NUL, so it cannot be faked by a value
_REF = re.compile(_MARK + "([A-Z_]+)" + _MARK)


def ref(name: str) -> str:
    """A placeholder for `$name` inside an argv word (rendered by `command`)."""
    if name not in VARIABLES:
        raise ValueError(f"{name} is not a variable the workflow sets")
    return f"{_MARK}{name}{_MARK}"


def word(text: str) -> str:
    """One argv word for bash: quoted literal parts, `"${NAME}"` for placeholders."""
    parts = _REF.split(text)
    if _MARK in "".join(parts[0::2]):
        raise ValueError("a NUL byte cannot be part of a command line")
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f'"${{{part}}}"')
        elif part:
            out.append(shlex.quote(part))
    return "".join(out) or "''"


def command(argv: Sequence[str]) -> str:
    """The whole command line."""
    return " ".join(word(arg) for arg in argv)
