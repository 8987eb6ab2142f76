"""Constant folding and dead branches: a condition over literals is decided at compile time.

After nested pipelines are inlined, a sub-pipeline called with a literal (`variant(mode="fast")`)
holds tests such as `"fast" == "slow"`. Parts of a test that read only literals are computed with
the reference meaning (`pipec.ir.evaluate`); a test that becomes a literal decides its condition:
the branch that can never run is dropped (and every `.after()` naming its steps, since a step after
a skipped step runs anyway), the other loses its condition. Parameters are never folded, even with
a default: they can be overridden at run time. A comparison that would fail at run time (`"a" < 1`)
is left for the run to report, and `and`/`or` keep Python's left-to-right evaluation, so folding
never hides an error the unoptimized pipeline would raise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import assert_never

from pipec.ir import evaluate, rewrite
from pipec.ir.expr_print import format_expr
from pipec.ir.model import (
    And,
    Compare,
    Condition,
    Const,
    Expr,
    LoopItem,
    Node,
    Not,
    Or,
    OutputRef,
    ParamRef,
    Pipeline,
)
from pipec.ir.passes import PassContext


def fold(pipeline: Pipeline, ctx: PassContext) -> Pipeline:
    """Simplify condition tests over literals; decide the conditions whose test is a literal."""
    dropped: list[str] = []

    def node(n: Node) -> Sequence[Node]:
        if not isinstance(n, Condition):
            return [n]
        test = simplify(n.test)
        written = format_expr(n.test)
        if isinstance(test, Const):
            holds = evaluate.truthy(test.value)
            live, dead = (n.then, n.otherwise) if holds else (n.otherwise, n.then)
            gone = rewrite.step_ids_in(dead)
            dropped.extend(gone)
            branch = ("otherwise", "then") if holds else ("then", "otherwise")
            why = f"the test `{written}` of condition {n.id!r} is always {str(holds).lower()}: "
            why += f"the {branch[0]} branch can never run" + (
                f" (dropped step{'s' if len(gone) > 1 else ''} {', '.join(gone)})" if gone else ""
            )
            why += f"; the {branch[1]} branch runs without a condition"
            ctx.rewrote("fold", tuple(rewrite.step_ids_in(live)) + tuple(gone), why, n.location)
            return live
        if test != n.test:
            why = f"the test of condition {n.id!r} reads literals: `{written}` is "
            why += f"`{format_expr(test)}`"
            ctx.rewrote("fold", (), why, n.location)
            return [n.model_copy(update={"test": test})]
        return [n]

    folded = rewrite.map_nodes(pipeline, node)
    if not dropped:
        return folded
    return rewrite.drop_unused_components(rewrite.remove_steps(folded, dropped))


def simplify(expr: Expr) -> Expr:
    """`expr` with every part that reads only literals computed (see the module docstring)."""
    match expr:
        case Const() | ParamRef() | OutputRef() | LoopItem():
            return expr
        case Compare():
            if isinstance(expr.left, Const) and isinstance(expr.right, Const):
                try:
                    return Const(value=evaluate.compare(expr.op, expr.left.value, expr.right.value))
                except evaluate.EvaluationError:
                    return expr  # the run reports it, as it would without the optimizer
            return expr
        case And() | Or():
            return _junction(expr)
        case Not():
            arg = simplify(expr.arg)
            if isinstance(arg, Const):
                return Const(value=not evaluate.truthy(arg.value))
            return expr.model_copy(update={"arg": arg})
        case _:
            assert_never(expr)


def _junction(expr: And | Or) -> Expr:
    """`and` / `or` left to right: a literal that cannot decide is dropped; one that decides
    ends the list (what follows is never evaluated, as at run time)."""
    deciding = isinstance(expr, Or)  # the truthiness that decides: true for `or`
    kept: list[Expr] = []
    for arg in (simplify(a) for a in expr.args):
        if isinstance(arg, Const):
            if evaluate.truthy(arg.value) != deciding:
                continue  # `x and true`, `x or false`: no effect on the result
            if not kept:
                return Const(value=deciding)
            kept.append(Const(value=deciding))  # what came before may still raise
            break
        kept.append(arg)
    if not kept:
        return Const(value=not deciding)
    if len(kept) == 1:
        return kept[0]  # tests read truthiness, so `and(x)` and `x` mean the same
    return expr.model_copy(update={"args": tuple(kept)})
