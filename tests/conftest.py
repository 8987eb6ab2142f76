"""Shared test fixtures: the repository paths, golden updates, and the tool environments (Airflow,
kfp) that the test command builds in `.venvs/`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI explores the same examples every run (a red build is reproducible, never a coin toss);
# developers get fresh random examples each time.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (REPO / "examples").glob("*.py") if not p.name.startswith("_"))
GOLDEN = REPO / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        help="Rewrite golden/ from the current output (refused when CI is set).",
    )


@pytest.fixture(scope="session")
def update_goldens(request: pytest.FixtureRequest) -> bool:
    wanted = bool(request.config.getoption("--update-goldens"))
    if wanted and os.environ.get("CI"):
        pytest.fail(
            "--update-goldens is refused when CI is set: goldens are reviewed, not rewritten"
        )
    return wanted


def tool_python(name: str) -> Path:
    """The python of a tool environment built by `.ci/toolenv` (e.g. `kfp`, `airflow`).

    Outside CI a missing environment skips the test with the command that builds it; in CI it is
    a failure, because the test command must have built it.
    """
    python = REPO / ".venvs" / name / "bin" / "python"
    if not python.exists():
        message = f"tool environment {name!r} is missing; build it with `bash .ci/toolenv {name}`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return python
