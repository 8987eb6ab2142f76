"""The local execution plan: the IR flattened into what the local runner executes.

`build(pipeline, settings)` turns a validated pipeline into a JSON-able dict (written as
`plan.json` by `pipec compile --target local`, stored with every run so `--resume` needs no
source): every node by id with its enclosing scopes, each step's runtime command template, where
its inputs come from and where its outputs go, and a canonical step order. The plan holds no
absolute paths, timestamps or random ids; placeholders stand for what is known only at run time:

    {python}         the interpreter running pipec
    {project_root}   the folder the component modules import from (`--code-root`)
    {artifact_root}  the artifact store root, {run_id} the run
    {iteration}      "" outside loops, "/<i>" or "/<i>/<j>" inside (see runtime.store)
    {input:NAME}     the runtime SOURCE of input NAME, resolved when the step is ready
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, assert_never

from pipec.backends.runtime.invocation import Invocation
from pipec.backends.settings import TargetSettings
from pipec.ir import graph
from pipec.ir.model import Condition, Group, Loop, Node, Pipeline, Step

PLAN_VERSION = 1
PLACEHOLDER = re.compile(r"\{(python|project_root|artifact_root|run_id|iteration|input:\w+)\}")


class PlanError(ValueError):
    """The pipeline has a shape the local plan cannot represent."""


def build(pipeline: Pipeline, settings: TargetSettings) -> dict[str, Any]:
    """The local plan of a validated pipeline (see the module docstring)."""
    components = graph.components(pipeline)
    nodes: dict[str, dict[str, Any]] = {}
    loops_of: dict[str, list[str]] = {}
    for node, scopes in graph.walk(pipeline.body):
        scope_ids = [s.id for s in scopes]
        loops_of[node.id] = [s.id for s in scopes if s.kind == "loop"]
        nodes[node.id] = _node(node, scope_ids, loops_of[node.id], components)
    _check_collects(nodes, loops_of)
    order = _canonical_order(pipeline)
    for step_id, priority in _remaining_path(order, nodes).items():
        nodes[step_id]["priority"] = priority
    return {
        "plan_version": PLAN_VERSION,
        "pipeline": {
            "id": pipeline.id,
            "name": pipeline.name,
            "description": pipeline.description,
        },
        "params": {
            p.name: {"type": p.type, "required": p.required, "default": p.default}
            for p in pipeline.params
        },
        "settings": settings.model_dump(mode="json", exclude_none=True),
        "body": [node.id for node in pipeline.body],
        "nodes": nodes,
        "order": order,
    }


def to_text(plan: Mapping[str, Any]) -> str:
    """plan.json text: sorted keys, two-space indent, one trailing newline."""
    return json.dumps(plan, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _node(
    node: Node,
    scopes: list[str],
    loops: list[str],
    components: Mapping[str, Any],
) -> dict[str, Any]:
    base: dict[str, Any] = {"kind": node.kind, "id": node.id, "scopes": scopes, "loops": loops}
    match node:
        case Step():
            return {**base, **_step(node, components[node.component])}
        case Condition():
            return {
                **base,
                "test": node.test.model_dump(mode="json"),
                "then": [n.id for n in node.then],
                "otherwise": [n.id for n in node.otherwise],
                "depends_on": _producers(graph.node_bindings(node)),
            }
        case Loop():
            return {
                **base,
                "items": node.items.model_dump(mode="json"),
                "parallelism": node.parallelism,
                "body": [n.id for n in node.body],
                "depends_on": _producers(graph.node_bindings(node)),
            }
        case Group():
            return {**base, "pipeline": node.pipeline, "body": [n.id for n in node.body]}
        case _:
            assert_never(node)


def _producers(bindings: list[Any]) -> list[str]:
    return sorted({p for b in bindings for p in graph.producers(b)})


def _step(step: Step, component: Any) -> dict[str, Any]:
    outputs = {port.name: port.type for port in component.outputs}
    if component.returns == "none":
        outputs = {}
    invocation: Invocation[str] = Invocation.of(
        component,
        "{project_root}",
        inputs={name: f"{{input:{name}}}" for name in sorted(step.args)},
        outputs={
            name: f"{{artifact_root}}/{{run_id}}/{step.id}{{iteration}}/{name}"
            for name in sorted(outputs)
        },
    )
    command = invocation.command("{python}")
    data_deps = _producers(list(step.args.values()))
    return {
        "name": step.name,
        "component": {
            "id": component.id,
            "module": component.module,
            "function": component.function,
            "returns": component.returns,
            "code_hash": component.code_hash,
        },
        "inputs": {name: b.model_dump(mode="json") for name, b in sorted(step.args.items())},
        "outputs": dict(sorted(outputs.items())),
        "after": sorted(step.after),
        "depends_on": sorted(set(data_deps) | set(step.after)),
        "command": command,
        "image": step.image,
        "resources": step.resources.model_dump(mode="json"),
        "retries": step.retries,
        "retry_delay": step.retry_delay,
        "timeout": step.timeout,
        "cache": step.cache,
        "secrets": sorted(step.secrets),
        "env": dict(sorted(step.env.items())),
    }


def _check_collects(nodes: dict[str, dict[str, Any]], loops_of: dict[str, list[str]]) -> None:
    """A collected output must come from a step directly in that loop (no deeper loop), so the
    collected list has one item per iteration."""
    for node in nodes.values():
        if node["kind"] != "step":
            continue
        for name, binding in node["inputs"].items():
            if binding["kind"] != "collect":
                continue
            producer_loops = loops_of.get(binding["step"], [])
            if not producer_loops or producer_loops[-1] != binding["loop"]:
                raise PlanError(
                    f"step {node['id']!r} input {name!r} collects {binding['step']!r} over loop "
                    f"{binding['loop']!r}, but that step is not directly inside that loop"
                )


def _canonical_order(pipeline: Pipeline) -> list[str]:
    """Steps in dependency order; ties keep the IR's written order (itself canonical)."""
    written = [s.id for s in graph.steps(pipeline)]
    position = {step_id: i for i, step_id in enumerate(written)}
    deps = graph.step_dependencies(pipeline)
    # Collecting from a loop waits for every step of it; a step inside a loop depends only on
    # the steps it names, which `step_dependencies` already says.
    remaining = {s: len(deps[s]) for s in written}
    dependents: dict[str, list[str]] = {s: [] for s in written}
    for step_id, needed in deps.items():
        for producer in needed:
            dependents[producer].append(step_id)
    ready = [(position[s], s) for s in written if remaining[s] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, step_id = heapq.heappop(ready)
        order.append(step_id)
        for consumer in dependents[step_id]:
            remaining[consumer] -= 1
            if remaining[consumer] == 0:
                heapq.heappush(ready, (position[consumer], consumer))
    if len(order) != len(written):
        stuck = sorted(set(written) - set(order))
        raise PlanError(f"steps depend on each other in a cycle: {', '.join(stuck)}")
    return order


def _remaining_path(order: list[str], nodes: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Step id -> the number of steps on the longest path from it to the end (itself included).

    The runner starts the ready step with the longest remaining path first; it refines this with
    the durations measured in earlier runs when it has them.
    """
    dependents: dict[str, list[str]] = {s: [] for s in order}
    for step_id in order:
        for producer in step_dependencies(nodes, step_id):
            dependents[producer].append(step_id)
    longest: dict[str, int] = {}
    for step_id in reversed(order):
        longest[step_id] = 1 + max((longest[c] for c in dependents[step_id]), default=0)
    return longest


def step_dependencies(nodes: Mapping[str, Mapping[str, Any]], step_id: str) -> list[str]:
    """The steps a step waits for: its own data and `.after()`, plus what its enclosing
    conditions and loops read."""
    needed = set(nodes[step_id]["depends_on"])
    for scope in nodes[step_id]["scopes"]:
        needed.update(nodes[scope].get("depends_on", ()))
    return sorted(needed)


def render(template: str, lookup: Callable[[str], str]) -> str:
    """Fill the placeholders of one command argument in a single pass (filled text is not
    scanned again, so JSON braces in values are safe)."""
    return PLACEHOLDER.sub(lambda m: lookup(m.group(1)), template)
