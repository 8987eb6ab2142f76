"""Fusion: a chain of steps runs as one task, where starting a task is what costs.

A CI job takes tens of seconds to start and a pod several; a chain of small steps spends most of
its time starting tasks. Fusion turns a chain into one step whose synthetic component runs the
members one after the other in one process, through the runtime (`pipec.backends.runtime.chain`):
every member still runs as its own invocation, with its own outputs in the store and its own log
section. It is a step like any other (not a new kind of node), so every target runs it unchanged.

A chain grows from a step to the one step that can run next when exactly one can (fan-out is left
alone: it is parallelism), while the members sit in the same block (body of a pipeline, branch,
loop or group), ask for the same image, resources, environment, secrets, retries and cache flag,
and have no timeout (a member's own timeout could not be kept apart inside one task). The outputs
of every member but the last are read only inside the chain, so no task outside waits on the
whole chain for a middle result. A chain holds at most `MAX_CHAIN` steps, so a retry repeats at
most that many and the chain's description stays small.

Whether a target fuses is its `fuse` setting (`Backend.fuses`); `--no-optimize` turns it off.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from pipec.backends.runtime import chain as chain_runtime
from pipec.ir import code, graph, names, rewrite
from pipec.ir.model import (
    Binding,
    Component,
    Condition,
    Const,
    Group,
    Loop,
    Node,
    OutputRef,
    Pipeline,
    Port,
    Step,
)
from pipec.ir.passes import PassContext

MAX_CHAIN = 25
MAX_PORT = 64  # the longest input/output name every engine takes (naming, N003)
MAX_NAME = 200  # the longest display name (naming, N002)
SPEC_TYPE = "dict[str, any]"


@functools.cache
def chain_code_hash() -> str:
    """The code hash of the chain runner, as a cache or a resume check computes it from the
    module (`pipec.ir.code`); the members' own hashes travel in the `chain` input."""
    runner = chain_runtime.run_chain
    return code.code_hash(runner, chain_runtime.COMPONENT_MODULE, chain_runtime.COMPONENT_FUNCTION)


def fuse(pipeline: Pipeline, ctx: PassContext) -> Pipeline:
    """Fuse every chain (see the module docstring)."""
    chains = find_chains(pipeline)
    if not chains:
        return pipeline
    components = graph.components(pipeline)
    taken_ids = {n.id for n, _ in graph.walk(pipeline.body)} | set(components)
    taken_names = {s.name for s in graph.steps(pipeline)}
    replacing: dict[str, Step] = {}
    dropped: set[str] = set()
    outputs: dict[tuple[str, str], tuple[str, str]] = {}
    moved: dict[str, str] = {}
    added: list[Component] = []
    for members in chains:
        fused, component, ports = _fused(members, components, taken_ids, taken_names)
        replacing[members[0].id] = fused
        dropped.update(m.id for m in members[1:])
        outputs.update(ports)
        moved.update((m.id, fused.id) for m in members)
        added.append(component)
        ids = ", ".join(m.id for m in members)
        ctx.rewrote(
            "fuse",
            (fused.id, *(m.id for m in members)),
            f"fused {len(members)} steps ({ids}) into one task {fused.id!r}: same image, "
            "resources and placement, and what all but the last produce is read only inside the "
            "chain; each step keeps its own outputs and log section",
            members[0].location,
        )

    def node(n: Node) -> Sequence[Node]:
        if isinstance(n, Step):
            if n.id in replacing:
                return [replacing[n.id]]
            if n.id in dropped:
                return []
        return [n]

    fused_pipeline = rewrite.map_nodes(pipeline, node).model_copy(
        update={"components": (*pipeline.components, *added)}
    )
    return rewrite.drop_unused_components(rewrite.redirect(fused_pipeline, outputs, moved))


def find_chains(pipeline: Pipeline) -> list[list[Step]]:
    """The chains to fuse, each in run order (see the module docstring)."""
    readers = rewrite.readers(pipeline)
    deps = graph.step_dependencies(pipeline)
    components = graph.components(pipeline)
    chains: list[list[Step]] = []
    for body in _bodies(pipeline.body):
        here = {n.id: n for n in body if isinstance(n, Step) and n.component in components}
        used: set[str] = set()
        for head in here.values():
            if head.id in used or not _fusable(head):
                continue
            members = _grow(head, here, used, readers, deps)
            if len(members) > 1:
                chains.append(members)
                used.update(m.id for m in members)
    return chains


def _bodies(body: Sequence[Node]) -> list[Sequence[Node]]:
    """Every block of the tree: the pipeline's body, each branch, each loop or group body."""
    found: list[Sequence[Node]] = [body]
    for node, _ in graph.walk(body):
        if isinstance(node, Condition):
            found += [node.then, node.otherwise]
        elif isinstance(node, Loop | Group):
            found.append(node.body)
    return found


def _grow(
    head: Step,
    here: dict[str, Step],
    used: set[str],
    readers: dict[str, set[str]],
    deps: dict[str, set[str]],
) -> list[Step]:
    members = [head]
    inside = {head.id}
    while len(members) < MAX_CHAIN:
        pending = {r for m in members for r in readers.get(m.id, ())} - inside
        ready = [p for p in sorted(pending) if not (deps.get(p, set()) & pending)]
        if len(ready) != 1 or ready[0] not in here or ready[0] in used:
            break
        step = here[ready[0]]
        if not _compatible(head, step):
            break
        members.append(step)
        inside.add(step.id)
    # What all but the last produce must be read only inside the chain.
    while len(members) > 1 and not all(
        readers.get(m.id, set()) <= {x.id for x in members} for m in members[:-1]
    ):
        members.pop()
    return members


def _fusable(step: Step) -> bool:
    return step.timeout is None


def _compatible(a: Step, b: Step) -> bool:
    return _fusable(b) and all(
        getattr(a, f) == getattr(b, f)
        for f in ("image", "resources", "env", "secrets", "retries", "retry_delay", "cache")
    )


def _fused(
    members: list[Step],
    components: dict[str, Component],
    taken_ids: set[str],
    taken_names: set[str],
) -> tuple[Step, Component, dict[tuple[str, str], tuple[str, str]]]:
    """The fused step, its synthetic component, and member output -> fused output."""
    first, last = members[0], members[-1]
    fused_id = _fused_id(first.id, last.id, taken_ids)
    inside = {m.id for m in members}
    args: dict[str, Binding] = {}
    inputs: list[Port] = []
    out_ports: list[Port] = []
    ports: dict[tuple[str, str], tuple[str, str]] = {}
    described: list[dict[str, object]] = []
    port_names: set[str] = {chain_runtime.SPEC_INPUT}
    for index, member in enumerate(members):
        component = components[member.component]
        declared = {p.name: p for p in component.inputs}
        reads: dict[str, object] = {}
        for name, binding in sorted(member.args.items()):
            if isinstance(binding, OutputRef) and binding.step in inside:
                reads[name] = {"step": binding.step, "output": binding.output}
                continue
            port = _port(index, member.id, name, port_names)
            args[port] = binding
            inputs.append(Port(name=port, type=declared[name].type))
            reads[name] = {"input": port}
        produced: dict[str, str] = {}
        for output in component.outputs if component.returns != "none" else ():
            port = _port(index, member.id, output.name, port_names)
            out_ports.append(Port(name=port, type=output.type))
            produced[output.name] = port
            ports[(member.id, output.name)] = (fused_id, port)
        described.append(
            {
                "id": member.id,
                "name": member.name,
                "at": f"{member.location.file}:{member.location.line}",
                "component": f"{component.module}:{component.function}",
                "returns": component.returns,
                "code_hash": component.code_hash,
                "inputs": reads,
                "outputs": produced,
            }
        )
    spec = {"pipec_chain": chain_runtime.SPEC_VERSION, "steps": described}
    args[chain_runtime.SPEC_INPUT] = Const(value=spec)  # type: ignore[arg-type]
    inputs.append(Port(name=chain_runtime.SPEC_INPUT, type=SPEC_TYPE))
    unhashed = sorted({u for m in members for u in components[m.component].unhashed})
    component = Component(
        id=fused_id,
        module=chain_runtime.COMPONENT_MODULE,
        function=chain_runtime.COMPONENT_FUNCTION,
        file=components[first.component].file,
        code_hash=chain_code_hash(),
        unhashed=tuple(unhashed),
        inputs=tuple(sorted(inputs, key=lambda p: p.name)),
        outputs=tuple(out_ports),
        returns="named",
    )
    after = dict.fromkeys(s for m in members for s in m.after if s not in inside)
    step = first.model_copy(
        update={
            "id": fused_id,
            "name": _fused_name(first.name, last.name, len(members), taken_names),
            "component": fused_id,
            "args": dict(sorted(args.items())),
            "after": tuple(after),
        }
    )
    return step, component, ports


def _fused_id(first: str, last: str, taken: set[str]) -> str:
    wanted = f"{first}_to_{last}"
    chosen = wanted if names.is_id(wanted) and wanted not in taken else None
    if chosen is None:
        chosen = names.unique_id(f"{first} chain", taken)
    taken.add(chosen)
    return chosen


def _fused_name(first: str, last: str, count: int, taken: set[str]) -> str:
    name = f"{first} -> {last} ({count} steps)"
    if len(name) > MAX_NAME:
        name = f"{first[:80]} -> {last[:80]} ({count} steps)"
    while name in taken:
        name += " (fused)"
    taken.add(name)
    return name


def _port(index: int, member: str, name: str, taken: set[str]) -> str:
    """A port name naming the member and its input or output, within what engines take, and
    not yet used by this fused step."""
    for candidate in (f"{member}__{name}", f"s{index}__{name}"):
        if len(candidate) <= MAX_PORT and candidate not in taken:
            break
    else:
        candidate = f"s{index}_{len(taken)}"
    taken.add(candidate)
    return candidate
