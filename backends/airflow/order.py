"""The order of a DAG file's tasks: what each task waits for, and with which trigger rule.

A step waits for the steps that produce its inputs, its `.after()` steps, and the branch task (or,
inside a foreach, the gate) of every condition it is inside. A task that may see an upstream
skipped by a condition or an empty foreach it is not inside itself runs with `none_failed`, so a
skip stops at the join; everything else keeps Airflow's `all_success`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import assert_never

from pipec.backends.airflow.pysource import INDENT, Code, render
from pipec.backends.diagnostics import unsupported_feature
from pipec.ir import graph
from pipec.ir.diagnostics import DiagnosticError
from pipec.ir.model import Condition, Group, Loop, Node, ParamRef, Pipeline, Step

ITEMS_SUFFIX = "-items"
"""The suffix of the task that reads a foreach's parameter items, or lists the iterations of a
flattened inner foreach (no IR id can have it)."""


class TaskOrder:
    """Dependencies and trigger rules of one pipeline's tasks, by IR node id."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.scopes = graph.node_scopes(pipeline)
        self.nodes = {node.id: node for node, _ in graph.walk(pipeline.body)}

    def loops_of(self, node_id: str) -> list[str]:
        """The foreach loops a node is in, outermost first."""
        return [s.id for s in self.scopes[node_id] if s.kind == "loop"]

    def loop_of(self, node_id: str) -> str | None:
        """The innermost foreach a node is in, if any."""
        loops = self.loops_of(node_id)
        return loops[-1] if loops else None

    def nested(self, loop_id: str) -> bool:
        """Whether a foreach runs inside another (and is flattened: see `dag`)."""
        return bool(self.loops_of(loop_id))

    def enclosing_conditions(self, node_id: str) -> list[str]:
        """What a node waits for to know it runs: the branch task of each enclosing condition,
        or (inside a foreach) the gate `<condition>-<side>` of the side it is on."""
        return [
            f"{s.id}-{s.branch}" if self.loop_of(s.id) is not None else s.id
            for s in self.scopes[node_id]
            if s.kind == "condition"
        ]

    def guards(self, node_id: str) -> set[str]:
        """The scopes that can keep a node from running: condition branches and loops."""
        node_id = node_id.partition("-")[0]  # a gate is guarded like its condition
        return {s.key for s in self.scopes[node_id] if s.kind in ("condition", "loop")}

    def upstream_of(self, step: Step) -> list[str]:
        """What a step waits for: its producers, its `.after()` steps and its conditions."""
        found: list[str] = []
        for binding in step.args.values():
            found += graph.producers(binding)
        found += step.after
        found += self.enclosing_conditions(step.id)
        return list(dict.fromkeys(found))

    def trigger_rule(self, node_id: str, upstream: Sequence[str]) -> str | None:
        """`none_failed` for a node that may see an upstream skipped by a scope it is not in;
        None (Airflow's `all_success`) otherwise."""
        mine = self.guards(node_id)
        if not any(not self.guards(u) <= mine for u in upstream):
            return None
        gated = [u for u in self.enclosing_conditions(node_id) if "-" in u]
        if gated:
            # A gate's skip reaches its side only through `all_success`.
            node = self.node_by_id(node_id)
            raise DiagnosticError(
                [
                    unsupported_feature(
                        "airflow",
                        node_id,
                        node.location if node is not None else None,
                        "a step inside a when/otherwise inside a foreach that also waits for a "
                        "step another condition may skip",
                        "drop the .after() on the conditional step, or move the condition",
                    )
                ]
            )
        return "none_failed"

    def reference(self, upstream_id: str, from_id: str) -> str:
        """The variable to depend on: a task, or the mapped group of a loop `from_id` is not in."""
        base, gate, side = upstream_id.partition("-")
        # A task in a foreach that does not enclose `from_id` is reached through its group; one
        # in an enclosing foreach (a flattened inner foreach reading its outer one) directly.
        mine = self.loops_of(from_id)
        outside = [loop for loop in self.loops_of(base) if loop not in mine]
        if outside:
            return f"{outside[-1]}_group"
        if gate:
            return f"{base}_{side}_gate"
        if isinstance(self.node_by_id(upstream_id), Condition):
            return f"{upstream_id}_branch"
        return f"{upstream_id}_task"

    def node_by_id(self, node_id: str) -> Node | None:
        # Looked up once per dependency edge: a dict built once keeps emit linear.
        return self.nodes.get(node_id)

    def depend(
        self, variable: str, node_id: str, upstream: Sequence[str], indent: int
    ) -> list[str]:
        """The `upstream >> variable` line that makes a task wait (none without upstream)."""
        refs = list(dict.fromkeys(self.reference(u, node_id) for u in upstream))
        if not refs:
            return []
        left = refs[0] if len(refs) == 1 else render([Code(r) for r in refs], indent)
        return [f"{INDENT * indent}{left} >> {variable}"]

    def task_ids(self, nodes: Sequence[Node]) -> list[str]:
        """Every Airflow task id inside `nodes`, in written order (what a branch follows)."""
        found: list[str] = []
        for node, _ in graph.walk(nodes):
            match node:
                case Step():
                    found.append(node.id)
                case Condition():
                    if self.loop_of(node.id) is None:
                        found.append(node.id)
                    else:
                        sides = (("then", node.then), ("otherwise", node.otherwise))
                        found += [f"{node.id}-{side}" for side, body in sides if body]
                case Loop():
                    reader = isinstance(node.items, ParamRef) or self.nested(node.id)
                    if reader and node.body:
                        found.append(f"{node.id}{ITEMS_SUFFIX}")
                case Group():
                    pass
                case _:
                    assert_never(node)
        return found
