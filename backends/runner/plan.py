"""The runner's plan: the IR flattened into what pipec's own scheduler executes.

`build(pipeline, settings)` turns a validated pipeline into a `Plan` (written as `plan.json` by
`pipec compile --target local`, stored with every run so `--resume` needs no source): every node
by id with its enclosing scopes, each step's runtime arguments, where its inputs come from (the
IR's own `Binding`s) and what it outputs, and a canonical step order. The plan holds no absolute
paths, timestamps or random ids; placeholders in the runtime arguments stand for what is known
only at run time:

    {project_root}   the folder the component modules import from (`--code-root`)
    {artifact_root}  the artifact store root, {run_id} the run
    {iteration}      "" outside loops, "/<i>" or "/<i>/<j>" inside (see runtime.store)
    {input:NAME}     the runtime SOURCE of input NAME, resolved when the step is ready

The arguments are those after `python -m pipec.backends.runtime`: which interpreter (or
container) runs them is the executor's business (`runner.executor`).
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Callable
from functools import cached_property
from typing import Annotated, Final, Literal, assert_never

from pydantic import BaseModel, ConfigDict, Field

from pipec.backends.runtime.invocation import Invocation, step_cache_key
from pipec.backends.settings import TargetSettings
from pipec.ir import graph
from pipec.ir.model import (
    Binding,
    Component,
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

PLAN_VERSION: Final = 2
PLACEHOLDER = re.compile(r"\{(project_root|artifact_root|run_id|iteration|input:\w+)\}")


class PlanError(ValueError):
    """The pipeline has a shape the plan cannot represent."""


class PlanModel(BaseModel):
    """Base of the plan's models: frozen, unknown fields are an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class RunSettings(PlanModel):
    """What the scheduler reads of a target's settings (see `LocalSettings` for their meaning)."""

    artifact_root: str | None = None
    parallelism: int | None = Field(default=None, ge=1)
    cpus: float | None = Field(default=None, gt=0)
    memory: str | None = None
    gpus: int | None = Field(default=None, ge=0)
    image: str | None = None

    @classmethod
    def of(cls, settings: TargetSettings) -> RunSettings:
        """The scheduler's part of a target's settings (fields it does not read stay out)."""
        given = settings.model_dump(mode="json", include=set(cls.model_fields))
        return cls.model_validate(given)


class PlanComponent(PlanModel):
    """The part of a component the scheduler needs: what to preload, and the code hash that is
    part of cache keys and checked again on resume."""

    id: str
    module: str
    function: str
    returns: Literal["single", "named", "none"]
    code_hash: str
    unhashed: tuple[str, ...] = ()
    """What the code hash could not cover (`ir.Component.unhashed`): such a step is never served
    from the cache."""

    @property
    def target(self) -> str:
        """`module:function`."""
        return f"{self.module}:{self.function}"


class PlanStep(PlanModel):
    """One step: its inputs (IR bindings), outputs (name -> type), runtime arguments, options.

    `depends_on` is what it reads and `.after()`; `loops` and `scopes` are the enclosing loops
    and scopes (outermost first)."""

    kind: Literal["step"] = "step"
    id: str
    name: str
    scopes: tuple[str, ...]
    loops: tuple[str, ...]
    component: PlanComponent
    inputs: dict[str, Binding]
    outputs: dict[str, str]
    after: tuple[str, ...]
    depends_on: tuple[str, ...]
    runtime_args: tuple[str, ...]
    image: str | None
    resources: Resources
    retries: int
    retry_delay: float
    timeout: float | None
    cache: bool
    secrets: tuple[str, ...]
    env: dict[str, str]


class PlanCondition(PlanModel):
    """`when(test)`: `then` when the test holds, `otherwise` when not; `depends_on` is what the
    test reads."""

    kind: Literal["condition"] = "condition"
    id: str
    scopes: tuple[str, ...]
    loops: tuple[str, ...]
    test: Expr
    then: tuple[str, ...]
    otherwise: tuple[str, ...]
    depends_on: tuple[str, ...]

    @property
    def children(self) -> tuple[str, ...]:
        """Both branches."""
        return (*self.then, *self.otherwise)


class PlanLoop(PlanModel):
    """`foreach(items)`: `body` once per item, at most `parallelism` iterations at a time."""

    kind: Literal["loop"] = "loop"
    id: str
    scopes: tuple[str, ...]
    loops: tuple[str, ...]
    items: Binding
    parallelism: int | None
    body: tuple[str, ...]
    depends_on: tuple[str, ...]

    @property
    def children(self) -> tuple[str, ...]:
        """The body."""
        return self.body


class PlanGroup(PlanModel):
    """A nested pipeline, inlined (also the root of a run, with id "")."""

    kind: Literal["group"] = "group"
    id: str
    scopes: tuple[str, ...]
    loops: tuple[str, ...]
    pipeline: str
    body: tuple[str, ...]

    @property
    def children(self) -> tuple[str, ...]:
        """The body."""
        return self.body


PlanNode = Annotated[PlanStep | PlanCondition | PlanLoop | PlanGroup, Field(discriminator="kind")]
PlanScope = PlanCondition | PlanLoop | PlanGroup


class PlanPipeline(PlanModel):
    """Which pipeline the plan runs."""

    id: str
    name: str
    description: str | None


class Plan(PlanModel):
    """The whole plan (see the module docstring)."""

    plan_version: Literal[2] = PLAN_VERSION
    pipeline: PlanPipeline
    params: tuple[Param, ...]
    settings: RunSettings
    body: tuple[str, ...]
    nodes: dict[str, PlanNode]
    order: tuple[str, ...]

    @cached_property
    def steps(self) -> dict[str, PlanStep]:
        """Step id -> step."""
        return {k: n for k, n in self.nodes.items() if isinstance(n, PlanStep)}

    @cached_property
    def declared_params(self) -> dict[str, Param]:
        """Parameter name -> parameter (what `params.resolve_params` takes)."""
        return {p.name: p for p in self.params}

    def root(self) -> PlanGroup:
        """The pipeline body as a group with id ""."""
        return PlanGroup(id="", scopes=(), loops=(), pipeline=self.pipeline.id, body=self.body)

    def step_dependencies(self, step_id: str) -> list[str]:
        """The steps a step waits for: its own data and `.after()`, plus what its enclosing
        conditions and loops read."""
        needed = set(self.steps[step_id].depends_on)
        for scope_id in self.steps[step_id].scopes:
            scope = self.nodes[scope_id]
            if isinstance(scope, PlanCondition | PlanLoop):
                needed.update(scope.depends_on)
        return sorted(needed)

    def to_text(self) -> str:
        """plan.json text: sorted keys, two-space indent, one trailing newline."""
        data = self.model_dump(mode="json")
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


class PlanVersionError(PlanError):
    """A stored plan written by another version of pipec, in a shape this one does not read."""


def load(text: str) -> Plan:
    """A plan from its JSON text (as stored with a run); PlanVersionError when another version
    of pipec wrote it."""
    data = json.loads(text)
    version = data.get("plan_version") if isinstance(data, dict) else None
    if version != PLAN_VERSION:
        raise PlanVersionError(f"plan version {version!r}; this pipec reads {PLAN_VERSION}")
    return Plan.model_validate(data)


def order_of(text: str) -> list[str]:
    """The canonical step order of a stored plan of any version (for showing old runs)."""
    data = json.loads(text)
    order = data.get("order", []) if isinstance(data, dict) else []
    return [str(step_id) for step_id in order]


def build(pipeline: Pipeline, settings: TargetSettings, *, runtime_cache: bool = False) -> Plan:
    """The plan of a validated pipeline (see the module docstring). `runtime_cache`: the steps'
    command lines ask the runtime to keep the step cache in the artifact store (`runtime.cache`),
    for a scheduler whose own cache does not outlive a run (the kubernetes in-cluster driver)."""
    components = graph.components(pipeline)
    run_settings = RunSettings.of(settings)
    nodes: dict[str, PlanStep | PlanCondition | PlanLoop | PlanGroup] = {}

    def cache_key(step: Step, component: Component) -> str | None:
        if not runtime_cache:
            return None
        return step_cache_key(pipeline.id, step, component, step.image or run_settings.image)

    for node, scopes in graph.walk(pipeline.body):
        scope_ids = tuple(s.id for s in scopes)
        loops = tuple(s.id for s in scopes if s.kind == "loop")
        nodes[node.id] = _node(node, scope_ids, loops, components, cache_key)
    return Plan(
        pipeline=PlanPipeline(id=pipeline.id, name=pipeline.name, description=pipeline.description),
        params=pipeline.params,
        settings=run_settings,
        body=tuple(node.id for node in pipeline.body),
        nodes=nodes,
        order=tuple(_canonical_order(pipeline)),
    )


def _node(
    node: Node,
    scopes: tuple[str, ...],
    loops: tuple[str, ...],
    components: dict[str, Component],
    cache_key: Callable[[Step, Component], str | None],
) -> PlanStep | PlanCondition | PlanLoop | PlanGroup:
    match node:
        case Step():
            component = components[node.component]
            return _step(node, scopes, loops, component, cache_key(node, component))
        case Condition():
            return PlanCondition(
                id=node.id,
                scopes=scopes,
                loops=loops,
                test=node.test,
                then=tuple(n.id for n in node.then),
                otherwise=tuple(n.id for n in node.otherwise),
                depends_on=_producers(graph.node_bindings(node)),
            )
        case Loop():
            return PlanLoop(
                id=node.id,
                scopes=scopes,
                loops=loops,
                items=node.items,
                parallelism=node.parallelism,
                body=tuple(n.id for n in node.body),
                depends_on=_producers(graph.node_bindings(node)),
            )
        case Group():
            return PlanGroup(
                id=node.id,
                scopes=scopes,
                loops=loops,
                pipeline=node.pipeline,
                body=tuple(n.id for n in node.body),
            )
        case _:
            assert_never(node)


def _producers(bindings: list[Binding]) -> tuple[str, ...]:
    return tuple(sorted({p for b in bindings for p in graph.producers(b)}))


def _step(
    step: Step,
    scopes: tuple[str, ...],
    loops: tuple[str, ...],
    component: Component,
    cache_key: str | None,
) -> PlanStep:
    outputs = {} if component.returns == "none" else {p.name: p.type for p in component.outputs}
    invocation: Invocation[str] = Invocation.of(
        component,
        "{project_root}",
        inputs={name: f"{{input:{name}}}" for name in sorted(step.args)},
        outputs={
            name: f"{{artifact_root}}/{{run_id}}/{step.id}{{iteration}}/{name}"
            for name in sorted(outputs)
        },
    ).with_cache("{artifact_root}", cache_key)
    data_deps = _producers(list(step.args.values()))
    return PlanStep(
        id=step.id,
        name=step.name,
        scopes=scopes,
        loops=loops,
        component=PlanComponent(
            id=component.id,
            module=component.module,
            function=component.function,
            returns=component.returns,
            code_hash=component.code_hash,
            unhashed=component.unhashed,
        ),
        inputs=dict(sorted(step.args.items())),
        outputs=dict(sorted(outputs.items())),
        after=tuple(sorted(step.after)),
        depends_on=tuple(sorted(set(data_deps) | set(step.after))),
        runtime_args=tuple(invocation.argv()),
        image=step.image,
        resources=step.resources,
        retries=step.retries,
        retry_delay=step.retry_delay,
        timeout=step.timeout,
        cache=step.cache,
        secrets=tuple(sorted(step.secrets)),
        env=dict(sorted(step.env.items())),
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
        # Validation (O001) reports cycles; this guards pipelines built without it.
        stuck = sorted(set(written) - set(order))
        raise PlanError(f"steps depend on each other in a cycle: {', '.join(stuck)}")
    return order


def render(template: str, lookup: Callable[[str], str]) -> str:
    """Fill the placeholders of one runtime argument in a single pass (filled text is not
    scanned again, so JSON braces in values are safe)."""
    return PLACEHOLDER.sub(lambda m: lookup(m.group(1)), template)
