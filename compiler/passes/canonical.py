"""The last pass: put everything order-free into one canonical order, so output is deterministic."""

from __future__ import annotations

from typing import assert_never

from pipec.ir.model import Condition, Group, Loop, Node, Pipeline, Step
from pipec.ir.passes import PassContext


def canonical(pipeline: Pipeline, ctx: PassContext) -> Pipeline:
    """Sort components, `after`, secrets, args and env; keep the written order of nodes."""
    return pipeline.model_copy(
        update={
            "components": tuple(sorted(pipeline.components, key=lambda c: c.id)),
            "body": _body(pipeline.body),
        }
    )


def _body(body: tuple[Node, ...]) -> tuple[Node, ...]:
    return tuple(_node(n) for n in body)


def _node(node: Node) -> Node:
    match node:
        case Step():
            if _is_canonical(node):
                return node  # the tracer already wrote it in order: skip the copy
            return node.model_copy(
                update={
                    "after": tuple(sorted(set(node.after))),
                    "secrets": tuple(sorted(set(node.secrets))),
                    "args": dict(sorted(node.args.items())),
                    "env": dict(sorted(node.env.items())),
                }
            )
        case Condition():
            return node.model_copy(
                update={"then": _body(node.then), "otherwise": _body(node.otherwise)}
            )
        case Loop() | Group():
            return node.model_copy(update={"body": _body(node.body)})
        case _:
            assert_never(node)


def _is_canonical(step: Step) -> bool:
    return (
        list(step.after) == sorted(set(step.after))
        and list(step.secrets) == sorted(set(step.secrets))
        and list(step.args) == sorted(step.args)
        and list(step.env) == sorted(step.env)
    )
