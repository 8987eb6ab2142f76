"""What the workflow's jobs need to know about the pipeline before any job is written: where each
value travels (job output, store, loop item), which outputs a job exports, how each condition is
decided, and which jobs each job waits for.

Jobs: one per step (id = the step id), `params` when the pipeline has parameters (every
parameter's checked value), `<condition>-test` for a condition GitHub's expressions cannot
decide with Python's meaning (see `expressions`), and `<loop>-iterations` for a foreach inside a
foreach. IR ids never hold `-`, so these never collide.

GitHub matrices do not nest, so a foreach inside a foreach is flattened: its `-iterations` job
lists, at run time, every iteration of it over every iteration of the loops around it, as
`i/j[/k..]` texts (outermost index first: the store's folder layout and `pipec.context()`'s
iteration), and every job of a step in it is one matrix over that list.

A job's `if:` is decided before its matrix expands, so a `when` inside a foreach is decided by
each iteration's job itself (`iteration_branches`): the job wrapper evaluates the test over that
iteration's operands and, when the branch is not taken, ends without running the step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipec.backends.common.conditions import ConditionError, Operand
from pipec.backends.github.expressions import Value, to_github
from pipec.ir import graph, types
from pipec.ir.model import (
    Collect,
    Condition,
    Const,
    Loop,
    LoopItem,
    OutputRef,
    ParamRef,
    Pipeline,
    Step,
)

PARAMS_JOB = "params"
TEST_SUFFIX = "-test"
INDICES_SUFFIX = "-indices"
ITERATIONS_SUFFIX = "-iterations"


def test_job(condition_id: str) -> str:
    """The job that decides a condition in Python."""
    return f"{condition_id}{TEST_SUFFIX}"


def iterations_job(loop_id: str) -> str:
    """The job listing the iterations of a foreach inside a foreach."""
    return f"{loop_id}{ITERATIONS_SUFFIX}"


@dataclass(frozen=True)
class Branch:
    """One enclosing condition branch of a job: the condition and whether it is `then`."""

    condition: str
    then: bool


@dataclass
class Layout:
    """The pipeline seen as GitHub jobs (see the module docstring)."""

    pipeline: Pipeline
    steps: dict[str, Step] = field(default_factory=dict)
    loop_of: dict[str, Loop | None] = field(default_factory=dict)
    branches: dict[str, tuple[Branch, ...]] = field(default_factory=dict)
    """Job id -> the branches around it decided by GitHub (the job's `if:`)."""
    iteration_branches: dict[str, tuple[Branch, ...]] = field(default_factory=dict)
    """Step id -> the branches around it inside a foreach, decided by each iteration's job."""
    conditions: dict[str, Condition] = field(default_factory=dict)
    """The conditions outside every foreach (a job's `if:` or a `-test` job)."""
    per_iteration: dict[str, Condition] = field(default_factory=dict)
    """The conditions inside a foreach (decided in each iteration's job)."""
    tests: dict[str, str | None] = field(default_factory=dict)
    """Condition id -> its `if:` expression, or None when the `-test` job decides it."""
    exports: dict[str, list[str]] = field(default_factory=dict)
    indices: dict[str, list[str]] = field(default_factory=dict)
    looped_params: list[str] = field(default_factory=list)
    needs: dict[str, set[str]] = field(default_factory=dict)
    loops: dict[str, Loop] = field(default_factory=dict)
    chain: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Loop id -> the loops around it and itself, outermost first."""

    def depth(self, loop_id: str | None) -> int:
        """How many loops deep an iteration of `loop_id` is (0 for None: outside every loop)."""
        return 0 if loop_id is None else len(self.chain[loop_id])

    def nested(self, loop: Loop) -> bool:
        """Whether `loop` is inside another foreach (flattened by an `-iterations` job)."""
        return self.depth(loop.id) > 1

    def step_depth(self, step_id: str) -> int:
        """How many loops surround a step."""
        loop = self.loop_of.get(step_id)
        return 0 if loop is None else self.depth(loop.id)


def build(pipeline: Pipeline) -> Layout:
    """The layout of a checked pipeline (conditions in loops were refused)."""
    layout = Layout(pipeline, loops=graph.loops(pipeline))
    env = graph.TypeEnv(pipeline)
    for node, scopes in graph.walk(pipeline.body):
        loops = [s for s in scopes if s.kind == "loop"]
        # Branches outside every loop are the job's `if:`; those inside one, its own decision.
        first_loop = next((i for i, s in enumerate(scopes) if s.kind == "loop"), len(scopes))
        branches = tuple(
            Branch(s.id, s.branch == "then") for s in scopes[:first_loop] if s.kind == "condition"
        )
        in_iteration = tuple(
            Branch(s.id, s.branch == "then") for s in scopes[first_loop:] if s.kind == "condition"
        )
        if isinstance(node, Step):
            layout.steps[node.id] = node
            layout.loop_of[node.id] = layout.loops[loops[-1].id] if loops else None
            layout.branches[node.id] = branches
            layout.iteration_branches[node.id] = in_iteration
        elif isinstance(node, Condition) and loops:
            layout.per_iteration[node.id] = node
        elif isinstance(node, Condition):
            layout.conditions[node.id] = node
            layout.branches[test_job(node.id)] = branches
        elif isinstance(node, Loop):
            layout.chain[node.id] = (*(s.id for s in loops), node.id)
            if loops:
                layout.branches[iterations_job(node.id)] = branches
    _values(layout, env)
    for condition in layout.conditions.values():
        layout.tests[condition.id] = _test(condition, layout, env)
    _needs(layout)
    return layout


def _export(layout: Layout, step: str, output: str) -> None:
    outputs = layout.exports.setdefault(step, [])
    if output not in outputs:
        outputs.append(output)


def travels_as_output(layout: Layout, env: graph.TypeEnv, ref: OutputRef, reader: str) -> bool:
    """Whether `reader` gets output `ref` as a job output: a JSON value made outside any loop
    (inside one, iterations overwrite each other's job outputs, so the store carries it)."""
    produced = env.outputs.get((ref.step, ref.output), "any")
    return layout.loop_of.get(ref.step) is None and types.is_value(produced) and reader != ref.step


def _values(layout: Layout, env: graph.TypeEnv) -> None:
    """Which outputs each step exports, which lists become matrices."""
    for step in layout.steps.values():
        for binding in step.args.values():
            if isinstance(binding, OutputRef) and travels_as_output(layout, env, binding, step.id):
                _export(layout, binding.step, binding.output)
    for node, _ in graph.walk(layout.pipeline.body):
        if isinstance(node, Condition):
            for operand in graph.expr_operands(node.test):
                # an output made inside a foreach is read from the store (per iteration)
                if isinstance(operand, OutputRef) and layout.loop_of[operand.step] is None:
                    _export(layout, operand.step, operand.output)
        elif isinstance(node, Loop) and layout.nested(node):
            # The `-iterations` job and the steps' wrapper read the items: a JSON job output
            # when made outside every loop, else from the store.
            if isinstance(node.items, OutputRef) and layout.loop_of[node.items.step] is None:
                _export(layout, node.items.step, node.items.output)
        elif isinstance(node, Loop):
            match node.items:
                case OutputRef():
                    _export(layout, node.items.step, node.items.output)
                    layout.indices.setdefault(node.items.step, []).append(node.items.output)
                case ParamRef():
                    if node.items.param not in layout.looped_params:
                        layout.looped_params.append(node.items.param)
                case Const() | LoopItem() | Collect():
                    pass  # a literal needs no job; the others were refused by the checks


def operand_value(operand: Operand, env: graph.TypeEnv) -> Value:
    """An operand in a job's `if:`: the JSON value a job output holds, parsed."""
    match operand:
        case ParamRef():
            text = f"fromJSON(needs.{PARAMS_JOB}.outputs.{operand.param})"
        case OutputRef():
            text = f"fromJSON(needs.{operand.step}.outputs.{operand.output})"
        case LoopItem():
            raise ConditionError("a job's if: cannot see a foreach item")
    return Value(text, env.of(operand) or "any")


def _test(condition: Condition, layout: Layout, env: graph.TypeEnv) -> str | None:
    try:
        return to_github(condition.test, lambda operand: operand_value(operand, env))
    except ConditionError:
        return None


def _needs(layout: Layout) -> None:
    """Direct needs of every job: producers, `.after()`, what enclosing conditions and loops
    read, the `params` job and `-test` jobs."""
    pipeline = layout.pipeline
    reads_params = {
        node.id
        for node, _ in graph.walk(pipeline.body)
        if any(isinstance(b, ParamRef) for b in graph.node_bindings(node))
    }
    for node, scopes in graph.walk(pipeline.body):
        match node:
            case Step():
                job = node.id
            case Condition() if node.id in layout.conditions and layout.tests[node.id] is None:
                job = test_job(node.id)
            case Loop() if layout.nested(node):
                job = iterations_job(node.id)
            case _:
                continue
        own = {p for b in graph.node_bindings(node) for p in graph.producers(b)}
        if isinstance(node, Step):
            own.update(node.after)
            loop = layout.loop_of[node.id]
            if loop is not None and layout.nested(loop):  # its matrix is that job's list
                own.add(iterations_job(loop.id))
            for binding in node.args.values():
                if isinstance(binding, Collect):  # the collected loop's items give the count
                    own.update(_items_needs(layout, binding.loop))
        if isinstance(node, Loop):
            own.update(_items_needs(layout, node.id))
        if node.id in reads_params:
            own.add(PARAMS_JOB)
        for scope in scopes:
            block = _block(layout, scope.id)
            if block is None:
                continue
            own.update(p for b in graph.node_bindings(block) for p in graph.producers(b))
            if block.id in reads_params:
                own.add(PARAMS_JOB)
            if block.id in layout.conditions and layout.tests[block.id] is None:
                own.add(test_job(block.id))
        layout.needs[job] = own
    if layout.pipeline.params:
        layout.needs[PARAMS_JOB] = set()


def _items_needs(layout: Layout, loop_id: str) -> set[str]:
    """The jobs whose outputs give the items of a loop and of every loop around it."""
    found: set[str] = set()
    for outer in layout.chain[loop_id]:
        items = layout.loops[outer].items
        found.update(graph.producers(items))
        if isinstance(items, ParamRef):
            found.add(PARAMS_JOB)
    return found


def _block(layout: Layout, scope_id: str) -> Condition | Loop | None:
    if scope_id in layout.conditions:
        return layout.conditions[scope_id]
    if scope_id in layout.per_iteration:
        return layout.per_iteration[scope_id]
    return layout.loops.get(scope_id)


def may_be_skipped_for(layout: Layout, need: str, job: str) -> bool:
    """Whether `need` can be skipped by a branch `job` is not inside, or by an empty foreach
    `job` is not inside (then `job` must not let GitHub's default skip it too)."""
    mine = layout.branches.get(job, ())
    theirs = layout.branches.get(need, ())
    loop = layout.loop_of.get(need)
    return mine[: len(theirs)] != theirs or (loop is not None and layout.loop_of.get(job) != loop)


def ancestors(layout: Layout, job: str) -> set[str]:
    """Every job `job` waits for, directly or not."""
    seen: set[str] = set()
    todo = list(layout.needs.get(job, ()))
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(layout.needs.get(current, ()))
    return seen
