"""The steps can run in some order: no cycle through data or `.after()`."""

from __future__ import annotations

from pipec.ir import graph
from pipec.ir.model import Pipeline
from pipec.passes.context import PassContext


def ordering(pipeline: Pipeline, ctx: PassContext) -> Pipeline:
    """Report each cycle once, naming the steps on it."""
    deps = graph.step_dependencies(pipeline)
    located = {s.id: s.location for s in graph.steps(pipeline)}
    for step_id, needed in deps.items():
        for other in sorted(needed):
            if other not in deps:
                ctx.error(
                    "O002",
                    f"step {step_id!r} waits for unknown step {other!r}",
                    "the IR is inconsistent; re-generate it from the Python source",
                    located[step_id],
                )
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in deps:
        if start in state:
            continue
        path: list[str] = []
        stack: list[tuple[str, list[str]]] = [(start, sorted(deps[start]))]
        state[start] = 1
        path.append(start)
        while stack:
            node, pending = stack[-1]
            if not pending:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            nxt = pending.pop()
            if nxt not in deps:
                continue
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                ctx.error(
                    "O001",
                    "these steps wait for each other in a cycle: " + " -> ".join(reversed(cycle)),
                    "remove one of the .after() calls (or data dependencies) on the cycle",
                    located[nxt],
                )
                continue
            if nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(deps[nxt])))
    return pipeline
