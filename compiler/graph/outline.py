"""The shape a picture is drawn from: a pipeline's blocks and steps, read from the IR or from a
run's stored plan.

A picture needs the same few facts whichever it is drawn from: the parameters, each step's inputs
(the IR's own `Binding`s), outputs and options, and the blocks that enclose steps (conditions
with their test, loops with their items, nested pipelines). `of_pipeline` reads them from a
validated IR pipeline (`pipec graph`); `of_plan` from the plan a run stored (`pipec runs show
--graph`, the web view), so an old run is drawn without its source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, assert_never

from pipec.backends.runner.plan import Plan, PlanCondition, PlanGroup, PlanLoop, PlanStep
from pipec.ir import graph
from pipec.ir.expr_print import format_value
from pipec.ir.model import (
    Binding,
    Condition,
    Expr,
    Group,
    Loop,
    Node,
    Param,
    Pipeline,
    Resources,
    Step,
)


@dataclass(frozen=True)
class StepBox:
    """One step as drawn: what it reads and writes, and its options (one line each)."""

    id: str
    name: str
    call: str
    """`module:function` of its component."""
    inputs: dict[str, Binding]
    outputs: dict[str, str]
    """Output name -> type string."""
    after: tuple[str, ...]
    options: tuple[str, ...]


@dataclass(frozen=True)
class Block:
    """A condition (with its `then` and `otherwise` blocks as children), a loop or a nested
    pipeline."""

    kind: Literal["condition", "then", "otherwise", "loop", "group"]
    id: str
    body: tuple[StepBox | Block, ...] = ()
    test: Expr | None = None
    items: Binding | None = None
    parallelism: int | None = None
    pipeline: str = ""


@dataclass(frozen=True)
class Outline:
    """A whole pipeline as drawn."""

    id: str
    name: str
    params: tuple[Param, ...]
    body: tuple[StepBox | Block, ...]
    steps: dict[str, StepBox] = field(default_factory=dict)


def _outline(
    pipeline_id: str, name: str, params: tuple[Param, ...], body: tuple[StepBox | Block, ...]
) -> Outline:
    steps: dict[str, StepBox] = {}

    def gather(items: tuple[StepBox | Block, ...]) -> None:
        for item in items:
            if isinstance(item, StepBox):
                steps[item.id] = item
            else:
                gather(item.body)

    gather(body)
    return Outline(pipeline_id, name, params, body, steps)


# ------------------------------------------------------------------------------- from the IR


def of_pipeline(pipeline: Pipeline) -> Outline:
    """The outline of a (validated) IR pipeline."""
    components = graph.components(pipeline)

    def convert(nodes: tuple[Node, ...]) -> tuple[StepBox | Block, ...]:
        return tuple(node_of(node) for node in nodes)

    def node_of(node: Node) -> StepBox | Block:
        match node:
            case Step():
                component = components[node.component]
                outputs = (
                    {}
                    if component.returns == "none"
                    else {p.name: p.type for p in component.outputs}
                )
                return StepBox(
                    id=node.id,
                    name=node.name,
                    call=f"{component.module}:{component.function}",
                    inputs=dict(sorted(node.args.items())),
                    outputs=dict(sorted(outputs.items())),
                    after=tuple(sorted(node.after)),
                    options=options_of(
                        node.image, node.resources, node.retries, node.retry_delay,
                        node.timeout, node.cache, node.secrets, node.env,
                    ),
                )
            case Condition():
                return _condition(node.id, node.test, convert(node.then), convert(node.otherwise))
            case Loop():
                return Block(
                    "loop", node.id, convert(node.body), items=node.items,
                    parallelism=node.parallelism,
                )
            case Group():
                return Block("group", node.id, convert(node.body), pipeline=node.pipeline)
            case _:
                assert_never(node)

    return _outline(pipeline.id, pipeline.name, pipeline.params, convert(pipeline.body))


def _condition(
    node_id: str, test: Expr, then: tuple[StepBox | Block, ...],
    otherwise: tuple[StepBox | Block, ...],
) -> Block:
    branches = [Block("then", node_id, then)]
    if otherwise:
        branches.append(Block("otherwise", node_id, otherwise))
    return Block("condition", node_id, tuple(branches), test=test)


# --------------------------------------------------------------------------- from a run's plan


def of_plan(plan: Plan) -> Outline:
    """The outline of a run's stored plan."""

    def convert(ids: tuple[str, ...]) -> tuple[StepBox | Block, ...]:
        return tuple(node_of(node_id) for node_id in ids)

    def node_of(node_id: str) -> StepBox | Block:
        node = plan.nodes[node_id]
        match node:
            case PlanStep():
                return StepBox(
                    id=node.id,
                    name=node.name,
                    call=node.component.target,
                    inputs=dict(node.inputs),
                    outputs=dict(node.outputs),
                    after=node.after,
                    options=options_of(
                        node.image, node.resources, node.retries, node.retry_delay,
                        node.timeout, node.cache, node.secrets, node.env,
                    ),
                )
            case PlanCondition():
                return _condition(node.id, node.test, convert(node.then), convert(node.otherwise))
            case PlanLoop():
                return Block(
                    "loop", node.id, convert(node.body), items=node.items,
                    parallelism=node.parallelism,
                )
            case PlanGroup():
                return Block("group", node.id, convert(node.body), pipeline=node.pipeline)
            case _:
                assert_never(node)

    return _outline(plan.pipeline.id, plan.pipeline.name, plan.params, convert(plan.body))


# ----------------------------------------------------------------------------------- options


def options_of(
    image: str | None,
    resources: Resources,
    retries: int,
    retry_delay: float,
    timeout: float | None,
    cache: bool,
    secrets: tuple[str, ...],
    env: dict[str, str],
) -> tuple[str, ...]:
    """A step's options that differ from the defaults, one `name value` line each (secrets by
    name only: their values are never in the IR anyway)."""
    lines: list[str] = []
    if image is not None:
        lines.append(f"image {image}")
    for key in ("cpu", "memory", "gpu", "gpu_type", "disk"):
        value = getattr(resources, key)
        if value is not None:
            lines.append(f"{key} {value if isinstance(value, str) else format_value(value)}")
    if retries:
        lines.append(f"retries {retries}" + (f" (delay {retry_delay:g}s)" if retry_delay else ""))
    if timeout is not None:
        lines.append(f"timeout {timeout:g}s")
    if not cache:
        lines.append("cache off")
    if secrets:
        lines.append("secrets " + ", ".join(sorted(secrets)))
    lines.extend(f"env {key}={env[key]}" for key in sorted(env))
    return tuple(lines)
