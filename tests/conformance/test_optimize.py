"""The optimizer over every adapter, at compile time: which runs `test_run.py` must repeat with
`--no-optimize`, and why the others need not.

A run is decided by the compiled pipeline (the same IR gives the same files and, through the
target's `run`, the same tasks), so where the optimizer changes nothing for a target the run
with `--no-optimize` is the run already compared with the local target. Here every (adapter,
example) pair outside `OPTIMIZED_EXAMPLES` compiles to the same IR and byte-identical files
either way, and every pair inside it is rewritten: when the optimizer starts (or stops) changing
an example on a target, this fails until the table says so, and the example then gets (or
loses) its run with `--no-optimize`. Parameters are never folded, so one set of parameter values
per example stands for all of them.
"""

from __future__ import annotations

import pytest

from pipec import driver
from pipec.ir.diagnostics import InvalidInput
from tests.conformance.cases import OPTIMIZED_EXAMPLES, Project
from tests.conformance.harness import Harness
from tests.conftest import EXAMPLES
from tests.passes.equivalence import OPTIMIZABLE

TARGET_NEUTRAL = {"fold", "prune", "cse"}


@pytest.mark.parametrize("stem", sorted(e.stem for e in EXAMPLES))
def test_only_the_listed_examples_change_under_the_optimizer(
    adapter: Harness, examples: Project, stem: str
) -> None:
    ref = examples.example(stem)
    listed = stem in OPTIMIZED_EXAMPLES.get(adapter.target, frozenset())
    try:
        optimized = driver.prepare(ref, adapter.target, adapter.settings)
    except InvalidInput as refused:  # e.g. U001: refused the same way as written
        with pytest.raises(type(refused)) as plain_refused:
            driver.prepare(ref, adapter.target, adapter.settings, optimize=False)
        assert str(plain_refused.value) == str(refused)
        assert not listed, f"{stem} does not compile for {adapter.id}: nothing to run"
        return
    plain = driver.prepare(ref, adapter.target, adapter.settings, optimize=False)
    rules = sorted({r.rule for r in optimized.rewrites})
    if listed:
        assert rules and optimized.pipeline != plain.pipeline, (
            f"the optimizer no longer changes {stem} on {adapter.target}: take it out of "
            "OPTIMIZED_EXAMPLES (tests/conformance/cases.py)"
        )
        return
    assert not rules, (
        f"the optimizer now changes {stem} on {adapter.target} ({', '.join(rules)}): add it to "
        "OPTIMIZED_EXAMPLES (tests/conformance/cases.py) so it runs with --no-optimize too"
    )
    assert optimized.pipeline == plain.pipeline
    assert optimized.emit() == plain.emit()


def test_the_optimizable_case_has_work_for_every_rule(adapter: Harness, project: Project) -> None:
    """The pipeline `test_run.py` runs both ways on every adapter is rewritten by every
    target-neutral rule, and fused where the target fuses by default."""
    ref = project.write(OPTIMIZABLE)
    compiled = driver.prepare(ref, adapter.target, adapter.settings)
    rules = {r.rule for r in compiled.rewrites}
    fuses = {"fuse"} if compiled.backend.fuses else set()
    assert rules == TARGET_NEUTRAL | fuses
    assert driver.prepare(ref, adapter.target, adapter.settings, optimize=False).rewrites == []
