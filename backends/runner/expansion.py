"""Run-time expansion of a plan into step instances: what may run now, what is skipped.

The plan is a tree (conditions, loops, groups); a run is a set of *instances*: a node plus the
indices of its enclosing loop iterations. Conditions are decided and loops expanded only when the
outputs they read exist, so fan-out and branches follow real values. This module holds no I/O: the
runner reports finished steps (`complete`) and answers value questions through a callback; the
expansion says which step instances are ready, and settles the rest as skipped (a branch not taken,
an input from a skipped step) or upstream_failed (something they wait for failed). A condition
means what `pipec.ir.evaluate` says it means, the reference every target follows.

A dependency on a step is a dependency on its instance in the same iterations; a dependency on a
step inside a loop the consumer is not in (a `collect`) is a dependency on the whole loop instance.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, assert_never

from pipec.backends.runner.plan import (
    Plan,
    PlanCondition,
    PlanGroup,
    PlanLoop,
    PlanNode,
    PlanScope,
    PlanStep,
)
from pipec.ir import graph
from pipec.ir.evaluate import EvaluationError, holds
from pipec.ir.model import Binding, Collect

SUCCEEDED = "succeeded"
CACHED = "cached"
FAILED = "failed"
SKIPPED = "skipped"
UPSTREAM_FAILED = "upstream_failed"
OK = frozenset({SUCCEEDED, CACHED})
NOT_RUN = frozenset({SKIPPED, UPSTREAM_FAILED})

Key = tuple[str, tuple[int, ...]]
ValueOf = Callable[[Binding, "Instance"], Any]
"""The JSON value a binding has for an instance (the runner reads outputs and parameters)."""


class ExpansionError(Exception):
    """A condition or loop could not be decided from the values it read."""


@dataclass(eq=False)
class Instance:
    """One node in one set of loop iterations."""

    node: PlanNode
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
        return self.node.id

    @property
    def key(self) -> Key:
        """(node id, iteration indices): unique in a run."""
        return (self.node.id, self.ctx)

    @property
    def step(self) -> PlanStep:
        """The step of a step instance (the runner only ever sees those)."""
        assert isinstance(self.node, PlanStep), f"{self.node.id} is a {self.node.kind}"
        return self.node

    @property
    def settled(self) -> bool:
        """Whether the instance reached a final status."""
        return self.status in OK or self.status in NOT_RUN or self.status == FAILED


class Expansion:
    """The instances of one run, created as scopes open and settled as results come in."""

    def __init__(self, plan: Plan) -> None:
        self.nodes = plan.nodes
        self.value_of: ValueOf = _no_values
        self.instances: dict[Key, Instance] = {}
        self.loop_items: dict[Key, list[Any]] = {}
        self.ready: deque[Instance] = deque()
        self.not_run: list[tuple[str, tuple[int, ...], str, str]] = []
        self.settled_without_running: deque[Instance] = deque()
        self.errors: list[str] = []
        self._settled: dict[Key, str] = {}
        self._waiters: dict[Key, list[tuple[Instance, str, bool]]] = {}
        self._work: deque[tuple[str, Instance]] = deque()
        self._body = plan.body
        self.root = Instance(plan.root(), (), None)

    # ------------------------------------------------------------------------ runner's view

    def start(self, value_of: ValueOf) -> None:
        """Open the pipeline body; `value_of` answers what conditions and loops read."""
        self.value_of = value_of
        self._open_children(self.root, self._body, ())
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

    def collect_keys(self, binding: Collect, consumer: Instance) -> list[Key]:
        """The producer instances a `collect` reads, in iteration order, skipped ones left out."""
        loop_key = self._dep_key(binding.step, consumer)
        count = len(self.loop_items.get(loop_key, []))
        keys = [(binding.step, (*loop_key[1], k)) for k in range(count)]
        return [key for key in keys if self._settled.get(key) in OK]

    def loop_item(self, loop_id: str, consumer: Instance) -> Any:
        """The current item of enclosing loop `loop_id` for `consumer`."""
        depth = consumer.node.loops.index(loop_id)
        items = self.loop_items[(loop_id, consumer.ctx[:depth])]
        return items[consumer.ctx[depth]]

    # ---------------------------------------------------------------------------- internals

    def _dep_key(self, producer: str, consumer: Instance) -> Key:
        producer_loops = self.nodes[producer].loops
        consumer_loops = consumer.node.loops
        shared = 0
        while (
            shared < min(len(producer_loops), len(consumer_loops))
            and producer_loops[shared] == consumer_loops[shared]
        ):
            shared += 1
        if shared == len(producer_loops):
            return (producer, consumer.ctx[:shared])
        return (producer_loops[shared], consumer.ctx[:shared])

    @staticmethod
    def _dependencies(node: PlanNode) -> list[tuple[str, bool]]:
        """(producer, is_data) pairs; `.after()` alone is ordering, not data."""
        match node:
            case PlanStep():
                data = {p for b in node.inputs.values() for p in graph.producers(b)}
                order = set(node.after) - data
                return [(p, True) for p in sorted(data)] + [(p, False) for p in sorted(order)]
            case PlanCondition() | PlanLoop():
                return [(p, True) for p in node.depends_on]
            case PlanGroup():
                return []
            case _:
                assert_never(node)

    def _create(
        self, node_id: str, ctx: tuple[int, ...], parent: Instance, forced: tuple[str, str] | None
    ) -> None:
        node = self.nodes[node_id]
        instance = Instance(node, ctx, parent, forced=forced)
        self.instances[instance.key] = instance
        parent.open_children += 1
        if isinstance(parent.node, PlanLoop):
            parent.iteration_open[ctx[-1]] += 1
        if forced is not None or isinstance(node, PlanGroup):
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
        node = instance.node
        if instance.forced is not None:
            status, reason = instance.forced
            match node:
                case PlanCondition() | PlanGroup():
                    self._open_children(instance, node.children, instance.ctx, instance.forced)
                case PlanLoop():
                    self._record_unreached(instance, node, status, reason)
                    self._settle(instance, status, reason)
                case PlanStep():
                    self._settle(instance, status, reason)
                case _:
                    assert_never(node)
            return
        try:
            match node:
                case PlanStep():
                    instance.status = "ready"
                    self.ready.append(instance)
                case PlanGroup():
                    self._open_children(instance, node.body, instance.ctx)
                case PlanCondition():
                    self._decide(instance, node)
                case PlanLoop():
                    self._expand(instance, node)
                case _:
                    assert_never(node)
        except (ExpansionError, EvaluationError) as exc:
            # Everything inside is not run; the run fails and its summary names this node.
            self.errors.append(f"{node.kind} {instance.id}: {exc}")
            instance.forced = (UPSTREAM_FAILED, f"{instance.id} could not be decided: {exc}")
            self._deps_met(instance)

    def _decide(self, instance: Instance, node: PlanCondition) -> None:
        test_holds = holds(node.test, lambda operand: self.value_of(operand, instance))
        taken, other = (node.then, node.otherwise) if test_holds else (node.otherwise, node.then)
        instance.opened = False
        skip = (SKIPPED, f"condition {instance.id} is {'true' if test_holds else 'false'}")
        for child in taken:
            self._create(child, instance.ctx, instance, None)
        for child in other:
            self._create(child, instance.ctx, instance, skip)
        instance.opened = True
        self._work.append(("close", instance))

    def _expand(self, instance: Instance, node: PlanLoop) -> None:
        items = self.value_of(node.items, instance)
        if not isinstance(items, list):
            raise ExpansionError(f"foreach needs a list, got {type(items).__name__}: {items!r}")
        instance.items = items
        self.loop_items[instance.key] = items
        if not items:
            self._record_unreached(instance, node, SKIPPED, f"loop {instance.id} has no items")
        instance.opened = False
        self._start_iterations(instance, node)
        instance.opened = True
        self._work.append(("close", instance))

    def _start_iterations(self, loop: Instance, node: PlanLoop) -> None:
        limit = node.parallelism or len(loop.items)
        while loop.next_iteration < len(loop.items) and loop.active_iterations < limit:
            k = loop.next_iteration
            loop.next_iteration += 1
            loop.active_iterations += 1
            loop.iteration_open[k] = 0
            for child in node.body:
                self._create(child, (*loop.ctx, k), loop, None)
            if loop.iteration_open[k] == 0:
                loop.active_iterations -= 1

    def _open_children(
        self,
        instance: Instance,
        children: tuple[str, ...],
        ctx: tuple[int, ...],
        forced: tuple[str, str] | None = None,
    ) -> None:
        instance.opened = False
        for child in children:
            self._create(child, ctx, instance, forced)
        instance.opened = True
        self._work.append(("close", instance))

    def _record_unreached(self, loop: Instance, node: PlanLoop, status: str, reason: str) -> None:
        """Steps under a loop that never ran an iteration still appear in the run's record."""
        for step_id in self._steps_under(node):
            self.not_run.append((step_id, loop.ctx, status, reason))

    def _steps_under(self, node: PlanScope) -> Iterator[str]:
        for child_id in node.children:
            child = self.nodes[child_id]
            if isinstance(child, PlanStep):
                yield child_id
            else:
                yield from self._steps_under(child)

    def _maybe_close(self, instance: Instance) -> None:
        if instance.settled or not instance.opened or instance.open_children:
            return
        if isinstance(instance.node, PlanLoop) and instance.next_iteration < len(instance.items):
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
        is_step = isinstance(instance.node, PlanStep)
        if is_step and status in NOT_RUN:
            self.settled_without_running.append(instance)
        if is_step and status in (FAILED, UPSTREAM_FAILED):
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
        if isinstance(parent.node, PlanLoop):
            k = instance.ctx[-1]
            parent.iteration_open[k] -= 1
            if parent.iteration_open[k] == 0:
                parent.active_iterations -= 1
                if parent.opened:
                    self._start_iterations(parent, parent.node)
        self._work.append(("close", parent))


def _no_values(binding: Binding, instance: Instance) -> Any:
    raise ExpansionError("the expansion was not started")  # pragma: no cover - a runner bug
