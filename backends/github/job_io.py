"""What a job of a pipec workflow reads and writes, and GitHub's limits on it (job.py's modes).

Values only ever arrive through environment variables (never a shell word or an expression), and
leave as job outputs appended to `$GITHUB_OUTPUT`, or as marked log lines act_run reads back
(`SKIPPED`, `LISTED`). Whatever is set up wrongly or cannot be used is a `JobError`: one line,
exit 2.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from typing import Any

SKIPPED = "pipec job: skipped:"  # a branch not taken in this iteration (act_run reads it)
LISTED = "pipec job: iterations:"  # every loop's iterations, JSON (act_run's summary reads it)
MATRIX_LIMIT = 256  # GitHub expands at most 256 jobs from one matrix
OUTPUT_LIMIT = 1_000_000  # bytes of one job output GitHub keeps


class JobError(Exception):
    """The job was set up wrongly or got a value it cannot use; one line, exit 2."""


def env(name: str) -> str:
    """The environment variable `name`, which the workflow must set."""
    if name not in os.environ:
        raise JobError(f"environment variable {name} is not set")
    return os.environ[name]


def json_env(name: str) -> Any:
    """The JSON value of the environment variable `name`."""
    try:
        return json.loads(env(name))
    except json.JSONDecodeError as exc:
        raise JobError(f"{name} is not JSON: {exc}") from None


def list_env(name: str) -> list[Any]:
    """The items of a foreach, a JSON list in the environment variable `name`."""
    items = json_env(name)
    if not isinstance(items, list):
        raise JobError(f"a foreach needs a list, got {type(items).__name__} (from {name})")
    return items


def pairs(values: Sequence[str], option: str) -> list[tuple[str, str]]:
    """The NAME=VALUE arguments given to `option`, split at the first `=`."""
    found = []
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep:
            raise JobError(f"{option} takes NAME=VALUE, got {value!r}")
        found.append((name, rest))
    return found


def iteration_index() -> tuple[int, ...]:
    """This job's iteration, from its matrix index `i/j[/k..]`."""
    text = env("PIPEC_INDEX")
    try:
        return tuple(int(part) for part in text.split("/"))
    except ValueError:
        raise JobError(f"PIPEC_INDEX is not an iteration: {text!r}") from None


def indices(items: list[Any], what: str) -> list[int]:
    """`[0, .., n-1]` for a matrix; over GitHub's limit is an error naming the loop's source."""
    if len(items) > MATRIX_LIMIT:
        raise JobError(
            f"{what} has {len(items)} items; a GitHub matrix expands at most {MATRIX_LIMIT} jobs "
            "(split the list, or run this pipeline on another target)"
        )
    return list(range(len(items)))


def write_output(name: str, text: str) -> None:
    """Append `name` = `text` to `$GITHUB_OUTPUT` (a delimiter no value can contain)."""
    if len(text.encode()) > OUTPUT_LIMIT:
        raise JobError(
            f"output {name} is {len(text.encode())} bytes; GitHub keeps job outputs up to "
            f"{OUTPUT_LIMIT} bytes (return a smaller value, or an artifact type)"
        )
    delimiter = f"pipec_{secrets.token_hex(16)}"
    with open(env("GITHUB_OUTPUT"), "a", encoding="utf-8") as handle:
        handle.write(f"{name}<<{delimiter}\n{text}\n{delimiter}\n")
