"""The harness itself: every registered target has an adapter, the target markers behave like
ibis' (strict xfails, unknown names refused), and the kubelet model expands like Kubernetes."""

from __future__ import annotations

import textwrap

import pytest

from pipec import backends
from tests.conformance import kubelet
from tests.conformance.adapters import ADAPTERS, adapter_ids

pytest_plugins = ["pytester"]


def test_every_registered_target_has_an_adapter() -> None:
    # A new target without an adapter fails here: add one in tests/conformance/adapters/.
    assert {a.target for a in ADAPTERS} == set(backends.available())
    assert len(set(adapter_ids())) == len(ADAPTERS)


def test_adapter_settings_are_valid_and_portable() -> None:
    for adapter in ADAPTERS:
        for setting in adapter.settings:
            key, _, value = setting.partition("=")
            assert key and value, setting
            assert not value.startswith(("/tmp", "/root", "/home", "/work")), setting


_CONFTEST = """
    from tests.conftest import pytest_collection_modifyitems, pytest_configure  # noqa: F401
"""


def _pytester_run(pytester: pytest.Pytester, body: str) -> pytest.RunResult:
    pytester.makeconftest(textwrap.dedent(_CONFTEST))
    pytester.makepyfile(test_marked=textwrap.dedent(body))
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "--strict-markers")


def test_a_marked_target_is_a_strict_xfail(pytester: pytest.Pytester) -> None:
    result = _pytester_run(
        pytester,
        """
        import pytest

        @pytest.mark.notyet(["vertex"], reason="no engine")
        @pytest.mark.parametrize("target", ["local", "vertex"])
        def test_fails_on_vertex(target):
            assert target != "vertex"

        @pytest.mark.never(["local"], reason="claims a failure that does not happen")
        @pytest.mark.parametrize("target", ["local"])
        def test_passes_anyway(target):
            pass
        """,
    )
    # vertex: xfailed; local passes; the passing `never` is an XPASS(strict), i.e. a failure.
    result.assert_outcomes(passed=1, xfailed=1, failed=1)


def test_an_unknown_target_in_a_marker_fails_collection(pytester: pytest.Pytester) -> None:
    result = _pytester_run(
        pytester,
        """
        import pytest

        @pytest.mark.notimpl(["kubeflw"], reason="typo")
        @pytest.mark.parametrize("target", ["local"])
        def test_x(target):
            pass
        """,
    )
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*unknown target(s) kubeflw*"])


def test_kubelet_expansion() -> None:
    defined = {"A": "x"}
    assert kubelet.expand("$(A)", defined) == "x"
    assert kubelet.expand("$$(A)", defined) == "$(A)"
    assert kubelet.expand("$$$(A)", defined) == "$x"
    assert kubelet.expand("$(B)", defined) == "$(B)"  # undefined: left as written
    assert kubelet.expand("$(A", defined) == "$(A"  # unclosed
    assert kubelet.expand("a $ b $x ${A} $", defined) == "a $ b $x ${A} $"
    # Only variables defined earlier in the list are seen.
    assert kubelet.container_env([("B", "$(A)"), ("A", "x"), ("C", "$(A)")]) == {
        "B": "$(A)",
        "A": "x",
        "C": "x",
    }
