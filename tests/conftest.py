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


# Target markers (ibis' notimpl / notyet / never): a test that a target cannot pass yet is marked
# for that target and becomes a strict xfail there, so it fails the day the target starts to pass
# and the marker must go. `targets` are registered target names (`airflow`) or conformance
# adapter ids (`airflow-docker`); a name that is neither fails the collection.
TARGET_MARKERS = {
    "notimpl": "pipec does not implement this for the target yet",
    "notyet": "the engine (or its stand-in here) cannot do this yet",
    "never": "the target will never do this (by design, or no engine can exist here)",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, meaning in TARGET_MARKERS.items():
        config.addinivalue_line(
            "markers",
            f"{name}(targets, reason, raises=None): {meaning}; a strict xfail for those targets",
        )


def _target_of(item: pytest.Item) -> tuple[str, str] | None:
    """(target, adapter id) of a test parametrized by a conformance adapter (`adapter` or
    `engine`) or by `target` (a target name); None for a test that is neither."""
    params = getattr(item, "callspec", None)
    if params is None:
        return None
    adapter = params.params.get("adapter", params.params.get("engine"))
    if adapter is not None:
        return adapter.target, adapter.id
    target = params.params.get("target")
    if isinstance(target, str):
        return target, target
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from pipec import backends
    from tests.conformance.adapters import adapter_ids

    known = set(backends.available()) | set(adapter_ids())
    for item in items:
        for marker in item.iter_markers():
            if marker.name not in TARGET_MARKERS:
                continue
            names, reason, raises = _marker_args(item, marker)
            unknown = sorted(set(names) - known)
            if unknown:
                raise pytest.UsageError(
                    f"{item.nodeid}: @{marker.name} names unknown target(s) {', '.join(unknown)}; "
                    f"known: {', '.join(sorted(known))}"
                )
            owner = _target_of(item)
            if owner is None:
                raise pytest.UsageError(
                    f"{item.nodeid}: @{marker.name} on a test that is not parametrized by "
                    "`adapter`, `engine` or `target`"
                )
            if owner[0] in names or owner[1] in names:
                item.add_marker(
                    pytest.mark.xfail(
                        strict=True, raises=raises, reason=f"{marker.name}: {reason}"
                    )
                )


def _marker_args(
    item: pytest.Item, marker: pytest.Mark
) -> tuple[list[str], str, type[BaseException] | tuple[type[BaseException], ...] | None]:
    """`@notimpl(["t1", "t2"], reason="...", raises=SomeError)`: every part checked."""
    targets = marker.args[0] if marker.args else marker.kwargs.get("targets")
    reason = marker.kwargs.get("reason") or (marker.args[1] if len(marker.args) > 1 else None)
    if not isinstance(targets, list | tuple) or not targets or not all(
        isinstance(t, str) for t in targets
    ):
        raise pytest.UsageError(f"{item.nodeid}: @{marker.name} needs a list of target names")
    if not isinstance(reason, str) or not reason.strip():
        raise pytest.UsageError(f"{item.nodeid}: @{marker.name} needs a reason")
    return list(targets), reason, marker.kwargs.get("raises")
