"""Target backends: the registry of targets. One package per target; see docs/DESIGN.md.

The registry is an explicit dict (name -> "module:Class") so that listing targets imports nothing;
third-party targets register under the entry-point group `pipec.backends`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pipec.ir.diagnostics import InvalidInput

if TYPE_CHECKING:
    from pipec.backends.base import Backend

REGISTRY: dict[str, str] = {
    "airflow": "pipec.backends.airflow:AirflowBackend",
    "github": "pipec.backends.github:GithubBackend",
    "kubeflow": "pipec.backends.kubeflow:KubeflowBackend",
    "kubernetes": "pipec.backends.kubernetes:KubernetesBackend",
    "local": "pipec.backends.local:LocalBackend",
    "local_docker": "pipec.backends.local_docker:LocalDockerBackend",
    "vertex": "pipec.backends.vertex:VertexBackend",
}


def available() -> dict[str, str]:
    """Every known target: the built-in ones plus entry points, sorted by name."""
    # importlib.metadata is slow to import, and every step's runtime imports this package.
    from importlib.metadata import entry_points

    found = dict(REGISTRY)
    for ep in entry_points(group="pipec.backends"):
        found.setdefault(ep.name, ep.value)
    return dict(sorted(found.items()))


class UnknownTarget(InvalidInput, KeyError):
    """A target name that is not registered."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown target {self.name!r}; known targets: {', '.join(available()) or '(none)'}"


def load(name: str) -> type[Backend[Any]]:
    """Import and return a target's backend class (a built-in name wins over an entry point
    of the same name, as in `available`, so it needs no scan of the installed packages)."""
    spec = REGISTRY.get(name) or available().get(name)
    if spec is None:
        raise UnknownTarget(name)
    module_name, _, attr = spec.partition(":")
    backend: type[Backend[Any]] = getattr(importlib.import_module(module_name), attr)
    return backend
