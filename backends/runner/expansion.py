"""Run-time expansion of a local plan into step instances: what may run now, what is skipped.

The plan is a tree (conditions, loops, groups); a run is a set of *instances*: a node plus the
indices of its enclosing loop iterations. Conditions are decided and loops expanded only when the
outputs they read exist, so fan-out and branches follow real values. This module holds no I/O: the
runner reports finished steps (`complete`) and answers value questions through a callback; the
expansion says which step instances are ready, and settles the rest as skipped (a branch not taken,
an input from a skipped step) or upstream_failed (something they wait for failed).

A dependency on a step is a dependency on its instance in the same iterations; a dependency on a
step inside a loop the consumer is not in (a `collect`) is a dependency on the whole loop instance.
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

SUCCEEDED = "succeeded"
CACHED = "cached"
FAILED = "failed"
SKIPPED = "skipped"
UPSTREAM_FAILED = "upstream_failed"
OK = frozenset({SUCCEEDED, CACHED})
NOT_RUN = frozenset({SKIPPED, UPSTREAM_FAILED})

Key = tuple[str, tuple[int, ...]]
ValueOf = Callable[[Mapping[str, Any], "Instance"], Any]

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class ExpansionError(Exception):
    """A condition or loop could not be decided from the values it read."""


@dataclass(eq=False)
class Instance:
    """One node in one set of loop iterations."""

    node: Mapping[str, Any]
    ctx: tuple[int, ...]
    parent: Instance | None
    status: str = "pending"
    reason: str = ""
    waiting: int = 0
    failed_dep: str | None = None
    skipped_dep: str | None = None
    forced: tuple[str, str] | None = None
    open_children: int = 0
    opened: bool = False
    failed_inside: bool = False
    items: list[Any] = field(default_factory=list)
    next_iteration: int = 0
    active_iterations: int = 0
    iteration_open: dict[int, int] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The node id."""
        return str(self.node["id"])

    @property
    def key(self) -> Key:
        """(node id, iteration indices): unique in a run."""
        return (self.id, self.ctx)

    @property
    def kind(self) -> str:
        """step, condition, loop or group."""
        return str(self.node["kind"])

    @property
    def settled(self) -> bool:
        """Whether the instance reached a final status."""
        return self.status in OK or self.status in NOT_RUN or self.status == FAILED


def evaluate(expr: Mapping[str, Any], operand: Callable[[Mapping[str, Any]], Any]) -> Any:
    """Evaluate a condition expression (IR JSON form); `operand` gives the value of a leaf."""
    kind = expr["kind"]
    if kind == "compare":
        left, right = operand(expr["left"]), operand(expr["right"])
        try:
            return _COMPARE[expr["op"]](left, right)
        except TypeError as exc:
            raise ExpansionError(f"cannot compare {left!r} {expr['op']} {right!r}: {exc}") from None
    if kind == "and":
        return all(bool(evaluate(arg, operand)) for arg in expr["args"])
    if kind == "or":
        return any(bool(evaluate(arg, operand)) for arg in expr["args"])
    if kind == "not":
        return not bool(evaluate(expr["arg"], operand))
    return operand(expr)


class Expansion:
    """The instances of one run, created as scopes open and settled as results come in."""

    def __init__(self, plan: Mapping[str, Any], value_of: ValueOf) -> None:
        self.nodes: Mapping[str, Mapping[str, Any]] = plan["nodes"]
        self.value_of = value_of
        self.instances: dict[Key, Instance] = {}
        self.loop_items: dict[Key, list[Any]] = {}
        self.ready: deque[Instance] = deque()
        self.not_run: list[tuple[str, tuple[int, ...], str, str]] = []
        self.settled_without_running: deque[Instance] = deque()
        self.errors: list[str] = []
        self._settled: dict[Key, str] = {}
        self._waiters: dict[Key, list[tuple[Instance, str, bool]]] = {}
        self._work: deque[tuple[str, Instance]] = deque()
        root_node = {"kind": "group", "id": "", "body": plan["body"], "loops": []}
        self.root = Instance(root_node, (), None)

    # ------------------------------------------------------------------------ runner's view

    def start(self) -> None:
        """Open the pipeline body."""
        self._open_children(self.root, self.root.node["body"], ())
        self._drain()

    @property
    def finished(self) -> bool:
        """Whether every instance has settled."""
        return self.root.settled

    def complete(self, instance: Instance, status: str, reason: str = "") -> None:
        """The runner's verdict on a ready step instance: succeeded, cached or failed."""
        self._settle(instance, status, reason)
        self._drain()

    def producer_key(self, step_id: str, consumer: Instance) -> Key:
        """The instance of `step_id` that `consumer` reads (same loop iterations)."""
        return self._dep_key(step_id, consumer)

    def collect_keys(self, binding: Mapping[str, Any], consumer: Instance) -> list[Key]:
        """The producer instances a `collect` reads, in iteration order, skipped ones left out."""
        loop_key = self._dep_key(binding["step"], consumer)
        count = len(self.loop_items.get(loop_key, []))
        keys = [(binding["step"], (*loop_key[1], k)) for k in range(count)]
        return [key for key in keys if self._settled.get(key) in OK]

    def loop_item(self, loop_id: str, consumer: Instance) -> Any:
        """The current item of enclosing loop `loop_id` for `consumer`."""
        depth = list(consumer.node["loops"]).index(loop_id)
        items = self.loop_items[(loop_id, consumer.ctx[:depth])]
        return items[consumer.ctx[depth]]

    # ---------------------------------------------------------------------------- internals

    def _dep_key(self, producer: str, consumer: Instance) -> Key:
        producer_loops = list(self.nodes[producer]["loops"])
        consumer_loops = list(consumer.node["loops"])
        shared = 0
        while (
            shared < min(len(producer_loops), len(consumer_loops))
            and producer_loops[shared] == consumer_loops[shared]
        ):
            shared += 1
        if shared == len(producer_loops):
            return (producer, consumer.ctx[:shared])
        return (producer_loops[shared], consumer.ctx[:shared])

    def _dependencies(self, node: Mapping[str, Any]) -> list[tuple[str, bool]]:
        """(producer, is_data) pairs; `.after()` alone is ordering, not data."""
        if node["kind"] != "step":
            return [(p, True) for p in node.get("depends_on", ())]
        data = {b["step"] for b in node["inputs"].values() if b["kind"] in ("output", "collect")}
        order = set(node["after"]) - data
        return [(p, True) for p in sorted(data)] + [(p, False) for p in sorted(order)]

    def _create(
        self, node_id: str, ctx: tuple[int, ...], parent: Instance, forced: tuple[str, str] | None
    ) -> None:
        node = self.nodes[node_id]
        instance = Instance(node, ctx, parent, forced=forced)
        self.instances[instance.key] = instance
        parent.open_children += 1
        if parent.kind == "loop":
            parent.iteration_open[ctx[-1]] += 1
        if forced is not None or node["kind"] == "group":
            self._work.append(("deps_met", instance))
            return
        for producer, is_data in self._dependencies(node):
            key = self._dep_key(producer, instance)
            status = self._settled.get(key)
            if status is None:
                instance.waiting += 1
                self._waiters.setdefault(key, []).append((instance, producer, is_data))
            else:
                self._note_dep(instance, producer, status, is_data)
        if instance.waiting == 0:
            self._work.append(("deps_met", instance))

    def _note_dep(self, instance: Instance, producer: str, status: str, is_data: bool) -> None:
        if status in (FAILED, UPSTREAM_FAILED) and instance.failed_dep is None:
            instance.failed_dep = producer
        elif status == SKIPPED and is_data and instance.skipped_dep is None:
            instance.skipped_dep = producer

    def _drain(self) -> None:
        while self._work:
            action, instance = self._work.popleft()
            if action == "deps_met":
                self._deps_met(instance)
            else:
                self._maybe_close(instance)

    def _deps_met(self, instance: Instance) -> None:
        if instance.forced is None and instance.failed_dep is not None:
            instance.forced = (UPSTREAM_FAILED, f"{instance.failed_dep} failed")
        elif instance.forced is None and instance.skipped_dep is not None:
            instance.forced = (SKIPPED, f"reads {instance.skipped_dep}, which was skipped")
        kind = instance.kind
        if instance.forced is not None:
            status, reason = instance.forced
            if kind in ("condition", "group"):
                children = self._branch_ids(instance)
                self._open_children(instance, children, instance.ctx, forced=instance.forced)
            else:
                if kind == "loop":
                    self._record_unreached(instance, status, reason)
                self._settle(instance, status, reason)
            return
        try:
            if kind == "step":
                instance.status = "ready"
                self.ready.append(instance)
            elif kind == "group":
                self._open_children(instance, instance.node["body"], instance.ctx)
            elif kind == "condition":
                self._decide(instance)
            else:
                self._expand(instance)
        except ExpansionError as exc:
            # Everything inside is not run; the run fails and its summary names this node.
            self.errors.append(f"{instance.kind} {instance.id}: {exc}")
            instance.forced = (UPSTREAM_FAILED, f"{instance.id} could not be decided: {exc}")
            self._deps_met(instance)

    def _branch_ids(self, instance: Instance) -> list[str]:
        if instance.kind == "group":
            return list(instance.node["body"])
        return [*instance.node["then"], *instance.node["otherwise"]]

    def _decide(self, instance: Instance) -> None:
        node = instance.node
        holds = bool(evaluate(node["test"], lambda operand: self.value_of(operand, instance)))
        taken, other = ("then", "otherwise") if holds else ("otherwise", "then")
        instance.opened = False
        skip = (SKIPPED, f"condition {instance.id} is {'true' if holds else 'false'}")
        for child in node[taken]:
            self._create(child, instance.ctx, instance, None)
        for child in node[other]:
            self._create(child, instance.ctx, instance, skip)
        instance.opened = True
        self._work.append(("close", instance))

    def _expand(self, instance: Instance) -> None:
        items = self.value_of(instance.node["items"], instance)
        if not isinstance(items, list):
            raise ExpansionError(f"foreach needs a list, got {type(items).__name__}: {items!r}")
        instance.items = items
        self.loop_items[instance.key] = items
        if not items:
            self._record_unreached(instance, SKIPPED, f"loop {instance.id} has no items")
        instance.opened = False
        self._start_iterations(instance)
        instance.opened = True
        self._work.append(("close", instance))

    def _start_iterations(self, loop: Instance) -> None:
        limit = loop.node.get("parallelism") or len(loop.items)
        while loop.next_iteration < len(loop.items) and loop.active_iterations < limit:
            k = loop.next_iteration
            loop.next_iteration += 1
            loop.active_iterations += 1
            loop.iteration_open[k] = 0
            for child in loop.node["body"]:
                self._create(child, (*loop.ctx, k), loop, None)
            if loop.iteration_open[k] == 0:
                loop.active_iterations -= 1

    def _open_children(
        self,
        instance: Instance,
        children: list[str],
        ctx: tuple[int, ...],
        forced: tuple[str, str] | None = None,
    ) -> None:
        instance.opened = False
        for child in children:
            self._create(child, ctx, instance, forced)
        instance.opened = True
        self._work.append(("close", instance))

    def _record_unreached(self, loop: Instance, status: str, reason: str) -> None:
        """Steps under a loop that never ran an iteration still appear in the run's record."""
        for step_id in self._steps_under(loop.node):
            self.not_run.append((step_id, loop.ctx, status, reason))

    def _steps_under(self, node: Mapping[str, Any]) -> Iterator[str]:
        for child_id in [*node.get("body", ()), *node.get("then", ()), *node.get("otherwise", ())]:
            child = self.nodes[child_id]
            if child["kind"] == "step":
                yield child_id
            else:
                yield from self._steps_under(child)

    def _maybe_close(self, instance: Instance) -> None:
        if instance.settled or not instance.opened or instance.open_children:
            return
        if instance.kind == "loop" and instance.next_iteration < len(instance.items):
            return
        if instance.forced is not None:
            self._settle(instance, *instance.forced)
        else:
            self._settle(instance, FAILED if instance.failed_inside else SUCCEEDED)

    def _settle(self, instance: Instance, status: str, reason: str = "") -> None:
        instance.status = status
        instance.reason = reason
        if instance.parent is None:
            return
        self._settled[instance.key] = status
        if instance.kind == "step" and status in NOT_RUN:
            self.settled_without_running.append(instance)
        if instance.kind == "step" and status in (FAILED, UPSTREAM_FAILED):
            ancestor: Instance | None = instance.parent
            while ancestor is not None:
                ancestor.failed_inside = True
                ancestor = ancestor.parent
        for waiter, producer, is_data in self._waiters.pop(instance.key, []):
            self._note_dep(waiter, producer, status, is_data)
            waiter.waiting -= 1
            if waiter.waiting == 0:
                self._work.append(("deps_met", waiter))
        parent = instance.parent
        parent.open_children -= 1
        if parent.kind == "loop":
            k = instance.ctx[-1]
            parent.iteration_open[k] -= 1
            if parent.iteration_open[k] == 0:
                parent.active_iterations -= 1
                if parent.opened:
                    self._start_iterations(parent)
        self._work.append(("close", parent))
