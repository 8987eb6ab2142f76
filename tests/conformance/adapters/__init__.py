"""Every conformance adapter (see tests/conformance/harness.py and README.md): one per target,
one per mode where a target's modes run steps differently. A new target adds its adapter here."""

from __future__ import annotations

from tests.conformance.adapters.airflow import AirflowHarness
from tests.conformance.adapters.github import GithubHarness
from tests.conformance.adapters.kfp import KubeflowHarness, VertexHarness
from tests.conformance.adapters.local import LocalHarness
from tests.conformance.harness import Harness

ADAPTERS: list[Harness] = [
    LocalHarness(),
    KubeflowHarness(),
    VertexHarness(),
    AirflowHarness("kubernetes"),
    AirflowHarness("docker"),
    AirflowHarness("local"),
    GithubHarness(),
]


def adapter_ids() -> list[str]:
    """Every adapter's test id."""
    return [a.id for a in ADAPTERS]


def reference() -> Harness:
    """The local target's adapter: every run is compared with its run."""
    (local,) = [a for a in ADAPTERS if a.id == "local"]
    return local
