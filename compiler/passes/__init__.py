"""Compiler passes over the IR. Each module holds one pass, a function with the module's name and
the signature `(pipeline, ctx) -> pipeline`. `PASSES` is the order they run in: validators first
(they only add diagnostics), the canonical ordering last.
"""

from __future__ import annotations

from collections.abc import Callable

from pipec.ir.model import Pipeline
from pipec.passes.canonical import canonical
from pipec.passes.context import PassContext
from pipec.passes.naming import naming
from pipec.passes.options import options
from pipec.passes.ordering import ordering
from pipec.passes.scopes import scopes
from pipec.passes.signature import signature
from pipec.passes.typecheck import typecheck

Pass = Callable[[Pipeline, PassContext], Pipeline]

PASSES: tuple[Pass, ...] = (naming, signature, typecheck, scopes, ordering, options, canonical)


def run_passes(pipeline: Pipeline, ctx: PassContext) -> Pipeline:
    """Run every pass in order; the caller decides what to do with `ctx.diagnostics`."""
    for run in PASSES:
        pipeline = run(pipeline, ctx)
    return pipeline


__all__ = ["PASSES", "PassContext", "run_passes"]
