"""Tree-rewrite helpers shared by the optimizer rules and the target lowerings.

The IR is a frozen tree, so every rewrite rebuilds the path from the root to what changed. These
helpers do that once: replace nodes bottom-up (`map_nodes`), rewrite every binding wherever it is
read (`map_bindings`: step arguments, condition tests, loop items), point readers of one step's
outputs at another's (`redirect`), drop steps and every `.after()` that named them
(`remove_steps`), drop components no step calls any more (`drop_unused_components`), and answer
who reads a step (`readers`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import assert_never

from pipec.ir import graph
from pipec.ir.model import (
    And,
    Binding,
    Collect,
    Compare,
    Condition,
    Const,
    Expr,
    Group,
    Loop,
    LoopItem,
    Node,
    Not,
    Operand,
    Or,
    OutputRef,
    ParamRef,
    Pipeline,
    Step,
)

NodeMap = Callable[[Node], Sequence[Node]]
"""A node (its own bodies already rewritten) -> the nodes that take its place (none drops it)."""


def map_nodes(pipeline: Pipeline, replace: NodeMap) -> Pipeline:
    """Rewrite every body bottom-up: children first, then `replace` on the node itself."""
    return pipeline.model_copy(update={"body": map_body(pipeline.body, replace)})


def map_body(body: Sequence[Node], replace: NodeMap) -> tuple[Node, ...]:
    """`map_nodes` over one body."""
    result: list[Node] = []
    for node in body:
        result.extend(replace(_with_children(node, replace)))
    return tuple(result)


def _with_children(node: Node, replace: NodeMap) -> Node:
    match node:
        case Step():
            return node
        case Condition():
            then, otherwise = map_body(node.then, replace), map_body(node.otherwise, replace)
            if then == node.then and otherwise == node.otherwise:
                return node
            return node.model_copy(update={"then": then, "otherwise": otherwise})
        case Loop() | Group():
            body = map_body(node.body, replace)
            return node if body == node.body else node.model_copy(update={"body": body})
        case _:
            assert_never(node)


BindingMap = Callable[[Binding], Binding]


def map_bindings(pipeline: Pipeline, change: BindingMap) -> Pipeline:
    """Rewrite every binding: step arguments, loop items and the operands of condition tests.

    An operand of a test must stay an operand: `change` may not turn one into a `collect`."""
    return pipeline.model_copy(update={"body": map_body_bindings(pipeline.body, change)})


def map_body_bindings(body: Sequence[Node], change: BindingMap) -> tuple[Node, ...]:
    """`map_bindings` over one body."""

    def node(n: Node) -> Sequence[Node]:
        match n:
            case Step():
                args = {name: change(b) for name, b in n.args.items()}
                return [n if args == n.args else n.model_copy(update={"args": args})]
            case Condition():
                test = map_expr(n.test, change)
                return [n if test == n.test else n.model_copy(update={"test": test})]
            case Loop():
                items = change(n.items)
                return [n if items == n.items else n.model_copy(update={"items": items})]
            case Group():
                return [n]
            case _:
                assert_never(n)

    return map_body(body, node)


def map_expr(expr: Expr, change: BindingMap) -> Expr:
    """`change` applied to every operand of a condition test."""
    match expr:
        case Const() | ParamRef() | OutputRef() | LoopItem():
            return _operand(change(expr))
        case Compare():
            return expr.model_copy(
                update={"left": _operand(change(expr.left)), "right": _operand(change(expr.right))}
            )
        case And() | Or():
            return expr.model_copy(update={"args": tuple(map_expr(a, change) for a in expr.args)})
        case Not():
            return expr.model_copy(update={"arg": map_expr(expr.arg, change)})
        case _:
            assert_never(expr)


def _operand(binding: Binding) -> Operand:
    if isinstance(binding, Collect):
        raise ValueError(f"a condition operand cannot become {graph.describe(binding)}")
    return binding


def redirect(
    pipeline: Pipeline,
    outputs: Mapping[tuple[str, str], tuple[str, str]],
    steps: Mapping[str, str],
) -> Pipeline:
    """Point readers elsewhere: output `(step, name)` -> `outputs[...]`, and `.after(step)` ->
    `.after(steps[step])` (an `.after()` of a step on itself is dropped, duplicates merged)."""

    def change(binding: Binding) -> Binding:
        if isinstance(binding, OutputRef | Collect):
            moved = outputs.get((binding.step, binding.output))
            if moved is not None:
                return binding.model_copy(update={"step": moved[0], "output": moved[1]})
        return binding

    def after(node: Node) -> Sequence[Node]:
        if not isinstance(node, Step) or not any(s in steps for s in node.after):
            return [node]
        waits = dict.fromkeys(steps.get(s, s) for s in node.after)
        waits.pop(node.id, None)
        return [node.model_copy(update={"after": tuple(waits)})]

    return map_nodes(map_bindings(pipeline, change), after)


def remove_steps(pipeline: Pipeline, ids: Collection[str]) -> Pipeline:
    """Drop the steps `ids` wherever they are, and every `.after()` that names one of them.

    Readers of their outputs must have been rewritten first (that is the caller's proof that
    dropping them is right)."""
    gone = set(ids)
    if not gone:
        return pipeline

    def node(n: Node) -> Sequence[Node]:
        if isinstance(n, Step):
            if n.id in gone:
                return []
            if any(s in gone for s in n.after):
                return [n.model_copy(update={"after": tuple(s for s in n.after if s not in gone)})]
        return [n]

    return map_nodes(pipeline, node)


def readers(pipeline: Pipeline) -> dict[str, set[str]]:
    """Step id -> the nodes that read it: steps through an argument or `.after()`, conditions
    through their test, loops through their items."""
    found: dict[str, set[str]] = {step.id: set() for step in graph.steps(pipeline)}
    for node, _ in graph.walk(pipeline.body):
        for binding in graph.node_bindings(node):
            for producer in graph.producers(binding):
                found.setdefault(producer, set()).add(node.id)
        if isinstance(node, Step):
            for producer in node.after:
                found.setdefault(producer, set()).add(node.id)
    return found


def step_ids_in(body: Sequence[Node]) -> list[str]:
    """The ids of every step in `body`, nested ones included, in written order."""
    return [n.id for n, _ in graph.walk(body) if isinstance(n, Step)]


def rename(
    body: Sequence[Node], ids: Mapping[str, str], names: Mapping[str, str]
) -> tuple[Node, ...]:
    """A copy of `body` with node ids changed by `ids` (steps, conditions, loops, groups), every
    reference to them inside it changed too, and steps' display names changed by `names` (keyed
    by the old id)."""

    def change(binding: Binding) -> Binding:
        match binding:
            case OutputRef():
                return binding.model_copy(update={"step": ids.get(binding.step, binding.step)})
            case Collect():
                moved = {"step": ids.get(binding.step, binding.step)}
                return binding.model_copy(
                    update={**moved, "loop": ids.get(binding.loop, binding.loop)}
                )
            case LoopItem():
                return binding.model_copy(update={"loop": ids.get(binding.loop, binding.loop)})
            case Const() | ParamRef():
                return binding
            case _:
                assert_never(binding)

    def node(n: Node) -> Sequence[Node]:
        update: dict[str, object] = {"id": ids.get(n.id, n.id)}
        if isinstance(n, Step):
            update["after"] = tuple(ids.get(s, s) for s in n.after)
            update["name"] = names.get(n.id, n.name)
        return [n.model_copy(update=update)]

    return map_body(map_body_bindings(body, change), node)


def drop_unused_components(pipeline: Pipeline) -> Pipeline:
    """`pipeline` without the components that no step calls (after steps were merged or
    dropped), so emitters do not define functions nothing runs."""
    called = {step.component for step in graph.steps(pipeline)}
    kept = tuple(c for c in pipeline.components if c.id in called)
    if len(kept) == len(pipeline.components):
        return pipeline
    return pipeline.model_copy(update={"components": kept})
