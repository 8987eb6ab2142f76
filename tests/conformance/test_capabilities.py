"""A target's Capabilities are the truth: a feature it lacks is one U001 diagnostic per node that
uses it, naming the node; a feature it claims compiles, and the engine's tool accepts the result.
A target that over-claims (or under-claims) fails here, feature by feature."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipec import backends, driver
from pipec.backends.base import FEATURES, features_used
from pipec.ir.diagnostics import DiagnosticError
from tests.conformance.cases import COMPANIONS, FEATURE_BODIES, Project, feature_source
from tests.conformance.harness import Harness

_U001 = re.compile(
    r"target '(?P<target>[^']+)' cannot express (?P<what>.+) \(used by '(?P<node>.+)'\)$"
)

# Where a target claims a feature that one of its modes cannot express.
_PER_MODE = "airflow's Capabilities are per target, not per operator mode"
_KNOWN_GAPS: dict[str, list[pytest.MarkDecorator]] = {
    "disk": [
        pytest.mark.notimpl(
            ["airflow-docker"], reason=f"DockerOperator cannot size storage; {_PER_MODE}"
        )
    ],
    "gpu": [
        pytest.mark.notimpl(
            ["airflow-docker"], reason=f"Docker requests GPUs by count, not type; {_PER_MODE}"
        ),
        # The case asks for a GPU model; a GPU by count runs (one FEATURES entry holds both).
        pytest.mark.never(
            ["local_docker"],
            reason="Docker requests GPUs by count only: the case's gpu_type is U001 from the "
            "target's check()",
            raises=DiagnosticError,
        ),
    ],
}
FEATURE_PARAMS = [
    pytest.param(feature, marks=_KNOWN_GAPS.get(feature, []), id=feature) for feature in FEATURES
]


def test_every_feature_has_a_case_that_uses_only_it(tmp_path: Path) -> None:
    assert set(FEATURE_BODIES) == set(FEATURES)
    project = Project.create(tmp_path / "project")
    for feature in FEATURES:
        pipeline, _ = driver.load_checked(project.write(feature_source(feature)))
        assert set(features_used(pipeline)) == {feature} | COMPANIONS.get(feature, set()), feature


def _expected_refusals(ref: str, target: str) -> set[tuple[str, str]]:
    """(feature words, node id) of every use of a feature the target does not claim."""
    pipeline, _ = driver.load_checked(ref)
    claims = backends.load(target).capabilities
    used = features_used(pipeline)
    return {
        (FEATURES[feature], node)
        for feature in claims.missing(set(used))
        for node, _ in used[feature]
    }


@pytest.mark.parametrize("feature", FEATURE_PARAMS)
def test_a_feature_compiles_or_is_refused_by_name(
    adapter: Harness, project: Project, feature: str
) -> None:
    ref = project.write(feature_source(feature))
    refused = _expected_refusals(ref, adapter.target)
    if not refused:
        adapter.compile(ref)  # claimed: it must compile
        return
    with pytest.raises(DiagnosticError) as caught:
        adapter.compile(ref)
    found = set()
    for diagnostic in caught.value.diagnostics:
        assert diagnostic.code == "U001", diagnostic.render()
        match = _U001.match(diagnostic.message)
        assert match and match["target"] == adapter.target, diagnostic.message
        assert diagnostic.location is not None, diagnostic.message
        found.add((match["what"], match["node"]))
    assert found == refused
    assert len(caught.value.diagnostics) == len(refused)


def test_claimed_features_pass_the_engines_tool(adapter: Harness, project: Project) -> None:
    """Every feature case the adapter compiles, read by the engine's own tool in one go."""
    bundles = {}
    for feature in FEATURES:
        try:
            bundles[feature] = adapter.compile(project.write(feature_source(feature)))
        except DiagnosticError:
            continue  # refused by name: see the test above
    assert bundles
    seen = adapter.validate(bundles)
    assert set(seen) == set(bundles)
