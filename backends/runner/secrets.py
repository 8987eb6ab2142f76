"""Secrets for the steps pipec runs: values from the environment, else from the project's `.env`.

Only names appear in plans and metadata; values are read when a step starts and handed to its
environment and to the executor's log masker, nowhere else; messages the runner itself writes
about a step are masked with `mask_text`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

MASK = "***"


class MissingSecret(Exception):
    """A step needs a secret that is neither in the environment nor in `.env`."""


def read_dotenv(path: Path) -> dict[str, str]:
    """`KEY=VALUE` lines (optionally `export KEY=...`, quoted values, `#` comments)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


def resolve(names: Sequence[str], project_root: Path) -> dict[str, str]:
    """The value of each secret; the environment wins over `.env`."""
    if not names:
        return {}
    dotenv = read_dotenv(project_root / ".env")
    found: dict[str, str] = {}
    missing: list[str] = []
    for name in names:
        value = os.environ.get(name, dotenv.get(name))
        if value is None:
            missing.append(name)
        else:
            found[name] = value
    if missing:
        raise MissingSecret(
            f"secret{'s' if len(missing) > 1 else ''} {', '.join(missing)} not set: export "
            f"{'them' if len(missing) > 1 else 'it'} or add to {project_root / '.env'}"
        )
    return found


def mask_text(text: str, secrets: Sequence[str]) -> str:
    """Replace every secret value in `text` (longest first, so one that contains another goes
    whole)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
