"""Blocks that can never run anything: a `foreach` over a literal `[]`, and empty blocks.

A loop over the literal empty list runs no iteration: it goes with its body, and what collected
its results becomes the literal `[]` (which may empty another loop, so this repeats until nothing
changes). A loop, condition or group whose body is empty (after folding or merging took its steps)
goes too. A loop over a parameter is kept even when the default is `[]`: parameters can be
overridden at run time. `.after()` of a dropped step is dropped: a step after a step that did not
run runs anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import assert_never

from pipec.ir import rewrite
from pipec.ir.model import (
    Binding,
    Collect,
    Condition,
    Const,
    Group,
    Loop,
    Node,
    Pipeline,
    Step,
)
from pipec.ir.passes import PassContext


def prune(pipeline: Pipeline, ctx: PassContext) -> Pipeline:
    """Drop loops over `[]` and empty blocks, until nothing changes."""
    changed = False
    while True:
        pruned = _prune_once(pipeline, ctx)
        if pruned is pipeline:
            return rewrite.drop_unused_components(pipeline) if changed else pipeline
        pipeline, changed = pruned, True


def _prune_once(pipeline: Pipeline, ctx: PassContext) -> Pipeline:
    emptied: set[str] = set()
    dropped: list[str] = []

    def node(n: Node) -> Sequence[Node]:
        match n:
            case Loop() if n.items == Const(value=[]):
                gone = rewrite.step_ids_in(n.body)
                emptied.add(n.id)
                dropped.extend(gone)
                why = f"loop {n.id!r} runs over the literal []: it never runs"
                if gone:
                    why += f" (dropped step{'s' if len(gone) > 1 else ''} {', '.join(gone)})"
                ctx.rewrote("prune", tuple(gone), why, n.location)
                return []
            case Loop() | Group() if not n.body:
                ctx.rewrote("prune", (), f"{n.kind} {n.id!r} is empty", n.location)
                return []
            case Condition() if not n.then and not n.otherwise:
                ctx.rewrote("prune", (), f"condition {n.id!r} has nothing to run", n.location)
                return []
            case Step() | Loop() | Group() | Condition():
                return [n]
            case _:
                assert_never(n)

    pruned = rewrite.map_nodes(pipeline, node)
    if pruned == pipeline:
        return pipeline

    def collected(binding: Binding) -> Binding:
        if isinstance(binding, Collect) and binding.loop in emptied:
            return Const(value=[])
        return binding

    return rewrite.remove_steps(rewrite.map_bindings(pruned, collected), dropped)
