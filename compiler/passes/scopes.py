"""Outputs are used only where they exist: inside the `when` / `foreach` that produced them, or
after `collect()` for loops. Loop items are used inside their own loop."""

from __future__ import annotations

from pipec.ir import graph
from pipec.ir.graph import Scope, describe
from pipec.ir.model import Binding, Collect, Location, LoopItem, OutputRef, Pipeline
from pipec.passes.context import PassContext


def _visible(scopes: tuple[Scope, ...]) -> list[str]:
    """The scope keys that limit visibility (groups do not)."""
    return [s.key for s in scopes if s.kind != "group"]


def scopes(pipeline: Pipeline, ctx: PassContext) -> Pipeline:
    """Report bindings that read an output, loop item or collected list out of its scope."""
    where = {node_id: _visible(s) for node_id, s in graph.node_scopes(pipeline).items()}
    for node, node_scopes in graph.walk(pipeline.body):
        here = _visible(node_scopes)
        for binding in graph.node_bindings(node):
            _check(binding, here, where, node.location, ctx)
    return pipeline


def _check(
    binding: Binding,
    here: list[str],
    where: dict[str, list[str]],
    location: Location,
    ctx: PassContext,
) -> None:
    if isinstance(binding, OutputRef):
        produced = where.get(binding.step)
        if produced is None or here[: len(produced)] == produced:
            return
        inner = next(k for i, k in enumerate(produced) if i >= len(here) or here[i] != k)
        kind = "foreach" if "." not in inner else "when/otherwise"
        hint = (
            "wrap it in collect(...) to get the list of results of every iteration"
            if kind == "foreach"
            else "use it inside the same when/otherwise block, or compute it outside the block"
        )
        ctx.error(
            "C001",
            f"{describe(binding)} is used outside the {kind} block ({inner.split('.')[0]!r}) "
            "that produced it",
            hint,
            location,
        )
    elif isinstance(binding, LoopItem):
        if binding.loop not in here:
            ctx.error(
                "C003",
                f"the item of loop {binding.loop!r} is used outside that loop",
                "use the loop variable only inside its `with foreach(...)` block",
                location,
            )
    elif isinstance(binding, Collect):
        produced = where.get(binding.step)
        if produced is None or binding.loop not in produced:
            ctx.error(
                "C002",
                f"{describe(binding)} gathers over loop {binding.loop!r}, which does not enclose "
                "that step",
                "collect() an output of a step called inside the foreach",
                location,
            )
            return
        cut = produced.index(binding.loop)
        if binding.loop in here or here[:cut] != produced[:cut]:
            ctx.error(
                "C002",
                f"{describe(binding)} is used inside loop {binding.loop!r} or outside the block "
                "around it",
                "use collect(...) after the `with foreach(...)` block, in the same block as it",
                location,
            )
        elif len(produced) > cut + 1:
            ctx.error(
                "C004",
                f"{describe(binding)} comes from inside a nested when/foreach of loop "
                f"{binding.loop!r}, so some iterations may have no result",
                "produce the output directly in the foreach body (move the condition into a "
                "step), or collect the inner loop first",
                location,
            )
