"""Validation with the official schemas (kubernetes-validate, in the `kubernetes` tool env):
`kubernetes-validate --strict -k VERSION` over files, for every version pipec supports."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

VERSIONS = tuple(f"1.{minor}.0" for minor in range(30, 38))
"""Every Kubernetes version from 1.30 (the oldest in use) to 1.37 (the newest schemas)."""


def validate_files(tool_python: Path, files: Sequence[Path]) -> dict[str, str]:
    """Run `kubernetes-validate --strict` for every version; version -> failure output (empty
    when every object of every file passed)."""
    tool = tool_python.parent / "kubernetes-validate"
    failures: dict[str, str] = {}
    for version in VERSIONS:
        done = subprocess.run(
            [str(tool), "--strict", "--quiet", "-k", version, *map(str, files)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or "ERROR" in done.stdout + done.stderr:
            failures[version] = (done.stdout + done.stderr)[-3000:]
    return failures
