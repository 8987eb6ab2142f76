"""Common work merged: two calls of one function with the same inputs and options are one step.

Only cacheable steps are merged: `cache=True` is the user saying that running the step again with
the same inputs gives the same result, so the second call can read the first one's outputs.
`cache=False` steps may have side effects (a deployment, a notification) and are never merged.

Two steps merge when their work keys are equal (`pipec.ir.stepkey`: function and code hash, every
argument binding, image, resources, env, secrets, retries, timeout, cache, `.after()`) and the
one that stays runs whenever the other would: it sits in the same loops, and the conditions
around it also surround the other (a step at the top level absorbs one inside a `when`, never the
reverse, and never across `then`/`otherwise`). The first one written stays, unless a later one
runs in more places; readers of the other read it. Merging can make more steps equal (their
inputs now come from one step), so it repeats until nothing changes.
"""

from __future__ import annotations

from pipec.ir import graph, rewrite, stepkey
from pipec.ir.graph import Scope
from pipec.ir.model import Pipeline, Step
from pipec.ir.passes import PassContext


def cse(pipeline: Pipeline, ctx: PassContext) -> Pipeline:
    """Merge steps that do the same work (see the module docstring)."""
    while True:
        merged = _merge_once(pipeline, ctx)
        if merged is pipeline:
            return pipeline
        pipeline = merged


def _merge_once(pipeline: Pipeline, ctx: PassContext) -> Pipeline:
    components = graph.components(pipeline)
    kept: dict[str, list[tuple[Step, tuple[Scope, ...]]]] = {}
    into: dict[str, Step] = {}
    for node, scopes in graph.walk(pipeline.body):
        if not isinstance(node, Step) or not node.cache or node.component not in components:
            continue
        key = stepkey.work_key(node, components[node.component])
        candidates = kept.setdefault(key, [])
        keeper = next((s for s, where in candidates if _dominates(where, scopes)), None)
        if keeper is not None:
            into[node.id] = keeper
            _explain(ctx, node, keeper)
            continue
        # A later call that runs in more places (outside the `when` an earlier one is in)
        # absorbs the earlier ones it encloses. Enclosing, not only dominating: every reader of
        # the earlier one then sits inside the blocks (groups too) of the later one, as readers
        # of a step always do, so emitters that build nested DAGs find it where they look.
        for earlier, where in [c for c in candidates if _encloses(scopes, c[1])]:
            into[earlier.id] = node
            candidates.remove((earlier, where))
            _explain(ctx, earlier, node)
        candidates.append((node, scopes))
    if not into:
        return pipeline
    for gone, keeper in list(into.items()):
        while keeper.id in into:  # merged into a step that was itself merged later
            keeper = into[keeper.id]
        into[gone] = keeper
    comps = {s.id: components[s.component] for s in into.values()}
    outputs = {
        (gone, port.name): (keeper.id, port.name)
        for gone, keeper in into.items()
        for port in comps[keeper.id].outputs
    }
    moved = rewrite.redirect(pipeline, outputs, {gone: k.id for gone, k in into.items()})
    return rewrite.drop_unused_components(rewrite.remove_steps(moved, into))


def _explain(ctx: PassContext, gone: Step, keeper: Step) -> None:
    ctx.rewrote(
        "cse",
        (keeper.id, gone.id),
        f"merged {gone.id!r} into {keeper.id!r} (line {keeper.location.line}): same component, "
        "inputs, options and image; cacheable",
        gone.location,
    )


def _dominates(keeper: tuple[Scope, ...], other: tuple[Scope, ...]) -> bool:
    """Whether a step in scopes `keeper` runs in every loop iteration and branch where a step in
    scopes `other` runs. Groups are inlined sub-pipelines and decide nothing."""
    loops_k = [s.key for s in keeper if s.kind == "loop"]
    loops_o = [s.key for s in other if s.kind == "loop"]
    if loops_k != loops_o:
        return False
    deciding_k = [s.key for s in keeper if s.kind != "group"]
    deciding_o = [s.key for s in other if s.kind != "group"]
    return deciding_o[: len(deciding_k)] == deciding_k


def _encloses(keeper: tuple[Scope, ...], other: tuple[Scope, ...]) -> bool:
    """Whether `other` sits inside every block `keeper` sits in (and `keeper` dominates it)."""
    return other[: len(keeper)] == keeper and _dominates(keeper, other)
