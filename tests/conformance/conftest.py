"""Fixtures of the conformance suite: the adapters as test parameters, and throwaway projects.

A test that takes `adapter` runs once per adapter (every target and mode); one that takes
`engine` runs once per adapter except the local target's, whose runs are the reference the
others are compared with. Target markers (`notimpl`, `notyet`, `never`; tests/conftest.py) make
a test a strict xfail for the adapters they name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.adapters import ADAPTERS, reference
from tests.conformance.cases import Project


def _parametrized(metafunc: pytest.Metafunc, name: str) -> bool:
    """Whether the test parametrizes `name` itself (with other values, e.g. per example)."""
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        if name in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return True
    return False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "adapter" in metafunc.fixturenames and not _parametrized(metafunc, "adapter"):
        metafunc.parametrize("adapter", ADAPTERS, ids=[a.id for a in ADAPTERS])
    if "engine" in metafunc.fixturenames:
        engines = [a for a in ADAPTERS if a is not reference()]
        metafunc.parametrize("engine", engines, ids=[a.id for a in engines])


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """An empty project (its own pyproject.toml, no target settings)."""
    return Project.create(tmp_path / "project")


@pytest.fixture(scope="session")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A copy of examples/ as a project of its own (runs leave their .pipec/ there), under a
    package name no other test compiles in this process."""
    return Project.of_examples(tmp_path_factory.mktemp("examples"), "conformance_examples")
