"""Invariants of every optimizer rule and lowering over random valid pipelines: the result still
validates, reads back from its text form, and makes the same calls (the reference interpreter
in `valid_pipelines`) with the default parameters and with others."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from pipec.backends.lowerings.fuse import fuse
from pipec.backends.lowerings.limits import split_loops
from pipec.ir.model import Pipeline
from pipec.ir.passes import Pass, PassContext, run
from pipec.ir.text import from_text, to_text
from pipec.passes import CANONICAL, OPTIMIZE, VALIDATE
from pipec.passes.optimize.cse import cse
from pipec.passes.optimize.fold import fold
from pipec.passes.optimize.prune import prune
from tests.passes.valid_pipelines import OTHER_PARAMS, calls, valid_pipelines

PIPELINES: dict[str, tuple[Pass, ...]] = {
    "fold": (fold,),
    "prune": (prune,),
    "cse": (cse,),
    "optimize": OPTIMIZE,
    "fuse": (fuse,),
    "optimize+fuse": (*OPTIMIZE, fuse),
    "split": (split_loops(2, "test"),),
}


def _errors(pipeline: Pipeline) -> list[str]:
    ctx = PassContext()
    run(VALIDATE, pipeline, ctx)
    return [d.render() for d in ctx.diagnostics]


@given(valid_pipelines())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_the_strategy_draws_valid_pipelines(pipeline: Pipeline) -> None:
    assert _errors(pipeline) == []


@pytest.mark.parametrize("name", sorted(PIPELINES))
@given(pipeline=valid_pipelines())
@settings(max_examples=120, suppress_health_check=[HealthCheck.too_slow])
def test_rewrites_keep_pipelines_valid_and_equivalent(name: str, pipeline: Pipeline) -> None:
    ctx = PassContext(target="test")
    result = run(CANONICAL, run(PIPELINES[name], pipeline, ctx), ctx)
    if [d.code for d in ctx.diagnostics] == ["L001"] * len(ctx.diagnostics) and ctx.diagnostics:
        return  # split refused a collected loop, with its diagnostic: nothing to compare
    assert ctx.diagnostics == []
    assert _errors(result) == [], to_text(result)
    assert from_text(to_text(result)) == result
    for params in ({}, OTHER_PARAMS):
        assert calls(result, params) == calls(pipeline, params), to_text(result)
    if result == run(CANONICAL, pipeline, PassContext()):
        assert ctx.rewrites == [], "a rewrite was reported but nothing changed"
    else:
        assert ctx.rewrites, "the pipeline changed without a rewrite saying why"


@given(pipeline=valid_pipelines())
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
def test_the_optimizer_reaches_a_fixed_point(pipeline: Pipeline) -> None:
    once = run(OPTIMIZE, pipeline, PassContext())
    again_ctx = PassContext()
    assert run(OPTIMIZE, once, again_ctx) == once
    assert again_ctx.rewrites == []
