"""Graph queries over the IR tree: walking nodes with their scopes, looking things up, deps.

Backends and passes ask these questions constantly; answering them in one place keeps every target
seeing the same pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import assert_never

from pipec.ir import types
from pipec.ir.model import (
    And,
    Binding,
    Collect,
    Compare,
    Component,
    Condition,
    Const,
    Expr,
    Group,
    Loop,
    LoopItem,
    Node,
    Not,
    Or,
    OutputRef,
    ParamRef,
    Pipeline,
    Step,
)


@dataclass(frozen=True)
class Scope:
    """One enclosing block: a condition branch (`then`/`otherwise`), a loop, or a group."""

    kind: str
    id: str
    branch: str = ""

    @property
    def key(self) -> str:
        """A string naming this scope, unique in the pipeline."""
        return f"{self.id}.{self.branch}" if self.branch else self.id


def walk(
    body: Sequence[Node], scopes: tuple[Scope, ...] = ()
) -> Iterator[tuple[Node, tuple[Scope, ...]]]:
    """Every node in `body`, depth first in written order, with the scopes enclosing it."""
    for node in body:
        yield node, scopes
        match node:
            case Step():
                pass
            case Condition():
                yield from walk(node.then, (*scopes, Scope("condition", node.id, "then")))
                yield from walk(node.otherwise, (*scopes, Scope("condition", node.id, "otherwise")))
            case Loop():
                yield from walk(node.body, (*scopes, Scope("loop", node.id)))
            case Group():
                yield from walk(node.body, (*scopes, Scope("group", node.id)))
            case _:
                assert_never(node)


def steps(pipeline: Pipeline) -> list[Step]:
    """All steps, depth first in written order."""
    return [node for node, _ in walk(pipeline.body) if isinstance(node, Step)]


def node_scopes(pipeline: Pipeline) -> dict[str, tuple[Scope, ...]]:
    """Node id (steps, conditions, loops, groups) -> the scopes enclosing it."""
    return {node.id: scopes for node, scopes in walk(pipeline.body)}


def loops(pipeline: Pipeline) -> dict[str, Loop]:
    """Loop id -> loop."""
    return {node.id: node for node, _ in walk(pipeline.body) if isinstance(node, Loop)}


def components(pipeline: Pipeline) -> dict[str, Component]:
    """Component id -> component."""
    return {c.id: c for c in pipeline.components}


def expr_operands(expr: Expr) -> Iterator[Const | ParamRef | OutputRef | LoopItem]:
    """The operands an expression reads, left to right."""
    match expr:
        case Const() | ParamRef() | OutputRef() | LoopItem():
            yield expr
        case Compare():
            yield expr.left
            yield expr.right
        case And() | Or():
            for arg in expr.args:
                yield from expr_operands(arg)
        case Not():
            yield from expr_operands(expr.arg)
        case _:
            assert_never(expr)


def node_bindings(node: Node) -> list[Binding]:
    """The bindings a node reads itself (not those of nodes nested inside it)."""
    match node:
        case Step():
            return list(node.args.values())
        case Condition():
            return list(expr_operands(node.test))
        case Loop():
            return [node.items]
        case Group():
            return []
        case _:
            assert_never(node)


def producers(binding: Binding) -> list[str]:
    """The step ids a binding reads from."""
    if isinstance(binding, OutputRef | Collect):
        return [binding.step]
    return []


class TypeEnv:
    """Answers `what type does this binding have` for one pipeline, with lookups built once."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.params = {p.name: p.type for p in pipeline.params}
        comps = components(pipeline)
        self.outputs: dict[tuple[str, str], str] = {}
        for step in steps(pipeline):
            component = comps.get(step.component)
            for port in component.outputs if component else ():
                self.outputs[(step.id, port.name)] = port.type
        self.loops = loops(pipeline)

    def of(self, binding: Binding) -> str | None:
        """The binding's type; None when it refers to something that does not exist."""
        match binding:
            case Const():
                return types.infer(binding.value)
            case ParamRef():
                return self.params.get(binding.param)
            case OutputRef():
                return self.outputs.get((binding.step, binding.output))
            case LoopItem():
                loop = self.loops.get(binding.loop)
                if loop is None:
                    return None
                source = self.of(loop.items)
                # A loop over a non-list is reported on the loop; its item is then unknown.
                return (types.item_type(source) or "any") if source else None
            case Collect():
                item = self.outputs.get((binding.step, binding.output))
                return f"list[{item}]" if item else None
            case _:
                assert_never(binding)


def step_dependencies(pipeline: Pipeline) -> dict[str, set[str]]:
    """Step id -> the steps it must wait for: data it reads, `.after()`, and the data read by the
    conditions and loops that enclose it."""
    deps: dict[str, set[str]] = {}
    block_reads: dict[str, set[str]] = {}
    for node, scopes in walk(pipeline.body):
        if isinstance(node, Condition | Loop):
            block_reads[node.id] = {p for b in node_bindings(node) for p in producers(b)}
        if isinstance(node, Step):
            needed = {p for b in node_bindings(node) for p in producers(b)}
            needed.update(node.after)
            for scope in scopes:
                needed.update(block_reads.get(scope.id, ()))
            deps[node.id] = needed
    return deps


def describe(binding: Binding) -> str:
    """A short phrase naming where a binding comes from, for diagnostics."""
    match binding:
        case Const():
            return f"the constant {binding.value!r}"
        case ParamRef():
            return f"parameter {binding.param!r}"
        case OutputRef():
            return f"output {binding.output!r} of step {binding.step!r}"
        case LoopItem():
            return f"the item of loop {binding.loop!r}"
        case Collect():
            return f"collect(output {binding.output!r} of step {binding.step!r})"
        case _:
            assert_never(binding)
