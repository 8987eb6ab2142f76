"""`pipec explain`: what the optimizer and the target's lowerings did to a pipeline, and why.

Each rewrite is printed with its pass, where the user wrote what it is about, and its reason;
then the number of steps and of tasks (step runs an engine starts) before and after. A loop's
iterations count when its list is known at compile time: a literal, or a parameter's default (a
run may pass another list); a loop over a step's output counts once and is named in a note.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pipec.ir import graph
from pipec.ir.model import Const, Loop, ParamRef, Pipeline, Step
from pipec.ir.passes import Rewrite


@dataclass
class TaskCount:
    """How many step runs a pipeline starts, and what the count assumed."""

    tasks: int = 0
    assumed: list[str] = field(default_factory=list)


def count_tasks(pipeline: Pipeline) -> TaskCount:
    """Step runs, with each loop's iterations when its list is known (see the module docstring).
    Both branches of a condition count: which one runs is known only at run time."""
    defaults = {p.name: p.default for p in pipeline.params}
    loops = graph.loops(pipeline)
    count = TaskCount()
    sizes: dict[str, int] = {}
    for loop in loops.values():
        sizes[loop.id] = _size(loop, defaults, count)
    for node, scopes in graph.walk(pipeline.body):
        if isinstance(node, Step):
            runs = 1
            for scope in scopes:
                if scope.kind == "loop":
                    runs *= sizes[scope.id]
            count.tasks += runs
    return count


def _size(loop: Loop, defaults: Mapping[str, object], count: TaskCount) -> int:
    match loop.items:
        case Const(value=list() as items):
            return len(items)
        case ParamRef(param=name) if isinstance(defaults.get(name), list):
            default = defaults[name]
            assert isinstance(default, list)
            count.assumed.append(
                f"loop {loop.id!r} at the default of parameter {name!r} ({len(default)} items)"
            )
            return len(default)
        case _:
            count.assumed.append(f"loop {loop.id!r} once (its list is known only at run time)")
            return 1


def render(before: Pipeline, after: Pipeline, rewrites: list[Rewrite], target: str | None) -> str:
    """The text `pipec explain` prints."""
    where = f" for target {target!r}" if target else " (target-neutral rules; --target adds fusion)"
    lines = [f"pipeline {after.id!r}{where}: {len(rewrites)} rewrite{_s(len(rewrites))}"]
    width = max((len(r.rule) for r in rewrites), default=0)
    for number, rewrite in enumerate(rewrites, 1):
        at = f"{rewrite.location.file}:{rewrite.location.line}: " if rewrite.location else ""
        lines.append(f"  {number}. {rewrite.rule.ljust(width)}  {at}{rewrite.why}")
    steps_before, steps_after = len(graph.steps(before)), len(graph.steps(after))
    tasks_before, tasks_after = count_tasks(before), count_tasks(after)
    lines.append(f"steps: {steps_before} -> {steps_after}")
    lines.append(f"tasks: {tasks_before.tasks} -> {tasks_after.tasks}")
    for note in dict.fromkeys(tasks_before.assumed + tasks_after.assumed):
        lines.append(f"  (counting {note})")
    return "\n".join(lines) + "\n"


def _s(n: int) -> str:
    return "" if n == 1 else "s"
