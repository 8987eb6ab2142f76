"""IR tree -> the DAGs of a KFP PipelineSpec: tasks, sub-DAGs, and the channels between them.

The IR's scopes map one to one onto KFP sub-DAGs: a `when` branch is a DAG task with a trigger
policy (the `otherwise` branch tests the negation), a `foreach` is a DAG task with an iterator
policy, a nested pipeline is a plain sub-DAG. A KFP task only sees its own DAG's inputs and its
sibling tasks' outputs, so every value read across DAG levels is plumbed:

* down: each DAG between the source and the reader declares an input (`pipelinechannel--...`,
  KFP's own naming) that its parent task passes in;
* up: each DAG between a producer and the level where the reader sits declares an output taken
  from its child; crossing a `foreach` boundary turns the output into the list of all iterations
  (KFP's `dsl.Collected`), which is exactly pipec's `collect`: a LIST parameter for values, an
  artifact list (`isArtifactList`) for artifacts, which every DAG it then crosses declares too.

`dependentTasks` are derived the same way: a reader depends on the sibling (at the deepest common
DAG) that contains its producer, for data, `.after()` and the inputs of enclosing blocks alike.

A `foreach` iterates over entries `{"index": "<i>", "item": <item>}` (runtime/loop_entries.py), so
that a step can know its iteration (KFP renders no index). The loop DAG's iterator input holds the
current entry (`pipelinechannel--<loop>-loop-entry`); readers take `item` or `index` out of it
with a `parameterExpressionSelector`, as KFP's compiler reads a field of a loop item, once, where
they leave the loop DAG: a deeper DAG gets the selected value as its own input
(`...-loop-value`, `...-loop-index`). A constant list's entries are written into the spec; any
other list goes through a task that writes them at run time (`EntriesTask`). No channel name
ends in `-loop-item`: kfp.local replaces such inputs of a loop task by its own current item.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, assert_never

from pipec.backends.common.conditions import ConditionError
from pipec.backends.diagnostics import unsupported_feature
from pipec.backends.kubeflow import cel
from pipec.backends.kubeflow import components as kx
from pipec.backends.runtime import loop_entries
from pipec.ir import graph, names, types
from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import (
    Binding,
    Collect,
    Condition,
    Const,
    Group,
    Loop,
    LoopItem,
    Node,
    OutputRef,
    ParamRef,
    Pipeline,
    Step,
)

JSON = dict[str, Any]
Path = tuple[str, ...]
PREFIX = "pipelinechannel--"
ITEM_SELECTOR = f'parseJson(string_value)["{loop_entries.ITEM}"]'
INDEX_SELECTOR = f'parseJson(string_value)["{loop_entries.INDEX}"]'


class NoKfpForm(Exception):
    """Something in the pipeline that has no KFP form; becomes a U001 diagnostic on the node
    being built. `what` completes "target T cannot express ..."."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


@dataclass
class Dag:
    """One DAG under construction: the root, or a sub-DAG run by task `task` of its parent."""

    path: Path
    task: str = ""
    component: str = ""
    tasks: dict[str, JSON] = field(default_factory=dict)
    inputs: dict[str, JSON] = field(default_factory=lambda: {"parameters": {}, "artifacts": {}})
    outputs: dict[str, JSON] = field(default_factory=lambda: {"parameters": {}, "artifacts": {}})
    selectors: dict[str, JSON] = field(default_factory=lambda: {"parameters": {}, "artifacts": {}})
    deps: dict[str, set[str]] = field(default_factory=dict)
    loop: str = ""
    branch: str = ""

    def component_spec(self) -> JSON:
        """This DAG as a KFP ComponentSpec."""
        dag: JSON = {
            "tasks": {
                name: _finish(task, self.deps.get(name, set())) for name, task in self.tasks.items()
            }
        }
        outputs = {
            kind: {name: _selector(kind, sel) for name, sel in found.items()}
            for kind, found in self.selectors.items()
            if found
        }
        if outputs:
            dag["outputs"] = outputs
        spec: JSON = {"dag": dag}
        for key, defs in (("inputDefinitions", self.inputs), ("outputDefinitions", self.outputs)):
            present = {kind: found for kind, found in defs.items() if found}
            if present:
                spec[key] = present
        return spec


def _selector(kind: str, source: JSON) -> JSON:
    if kind == "parameters":
        return {"valueFromParameter": source}
    return {
        "artifactSelectors": [
            {"producerSubtask": source["producerSubtask"], "outputArtifactKey": source["key"]}
        ]
    }


def _finish(task: JSON, deps: set[str]) -> JSON:
    """A task with its dependencies (sorted) and without empty input groups."""
    done = {k: v for k, v in task.items() if k != "inputs"}
    if deps:
        done["dependentTasks"] = sorted(deps)
    inputs = {kind: found for kind, found in task.get("inputs", {}).items() if found}
    if inputs:
        done["inputs"] = inputs
    return done


@dataclass(frozen=True)
class Source:
    """A value as one DAG sees it: how a task input reads it, its channel name, its type."""

    ref: JSON
    channel: str
    type: str

    @property
    def kind(self) -> str:
        return "artifacts" if kx.travels_as_artifact(self.type) else "parameters"


StepTask = Callable[[Step, dict[str, Source], list[Source]], JSON]
"""A step's task from its input sources and its iteration indexes (outermost loop first)."""
EntriesTask = Callable[[Loop, Source], JSON]
"""The task that writes a loop's entries at run time from its items' source (output `ENTRIES`)."""
# The entries task's output, and the loop task's input from it, are named as KFP's compiler names
# a single-output component's (`Output`, `pipelinechannel--<task>-Output`): kfp.local finds the
# items of a loop by parsing that name (not by the loop task's inputs).
ENTRIES = "Output"


class DagBuilder:
    """Walks one pipeline and fills the DAGs; `step_task` turns a step into its task spec."""

    def __init__(
        self, pipeline: Pipeline, step_task: StepTask, entries_task: EntriesTask, target: str
    ) -> None:
        self.pipeline = pipeline
        self.target = target
        self.step_task = step_task
        self.entries_task = entries_task
        self.env = graph.TypeEnv(pipeline)
        self.node_paths = {
            node_id: tuple(s.key for s in scopes)
            for node_id, scopes in graph.node_scopes(pipeline).items()
        }
        self.loops = graph.loops(pipeline)
        self.dags: dict[Path, Dag] = {(): Dag(())}
        self.task_names: set[str] = {names.dns_label(i) for i in self.node_paths}
        self.component_names: set[str] = set()
        self.diagnostics: list[Diagnostic] = []

    # ----------------------------------------------------------------------------------------
    # Naming

    def unique(self, base: str, taken: set[str]) -> str:
        """`base`, or `base-2`, `base-3`, ... when taken; reserves the result."""
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}-{n}", n + 1
        taken.add(candidate)
        return candidate

    def task_of(self, node_id: str) -> str:
        return names.dns_label(node_id)

    # ----------------------------------------------------------------------------------------
    # Walk

    def build(self) -> list[Dag]:
        """Fill every DAG; return them root first, in written order."""
        self._body(self.pipeline.body, ())
        return list(self.dags.values())

    def _body(self, body: Sequence[Node], path: Path) -> None:
        for node in body:
            try:
                match node:
                    case Step():
                        self._step(node, path)
                    case Condition():
                        self._condition(node, path)
                    case Loop():
                        self._loop(node, path)
                    case Group():
                        dag = self._sub_dag(path, node.id, self.task_of(node.id))
                        self.dags[path].tasks[dag.task] = self._dag_task(dag, node.id)
                        self._body(node.body, dag.path)
                    case _:
                        assert_never(node)
            except NoKfpForm as exc:
                self.diagnostics.append(
                    unsupported_feature(self.target, node.id, node.location, exc.what)
                )

    def _sub_dag(self, parent: Path, key: str, task: str) -> Dag:
        dag = Dag((*parent, key), task=task)
        dag.component = self.unique(f"comp-{task}", self.component_names)
        self.dags[dag.path] = dag
        return dag

    def _dag_task(self, dag: Dag, display: str) -> JSON:
        return {
            "taskInfo": {"name": display},
            "componentRef": {"name": dag.component},
            "inputs": {"parameters": {}, "artifacts": {}},
        }

    def _step(self, step: Step, path: Path) -> None:
        sources: dict[str, Source] = {}
        for name in sorted(step.args):
            binding = step.args[name]
            if isinstance(binding, Const):
                type_text = types.infer(binding.value) or "any"
                value = kx.kfp_value(binding.value, type_text)
                sources[name] = Source({"runtimeValue": {"constant": value}}, "", type_text)
            else:
                sources[name] = self.read(binding, path, self.task_of(step.id))
        for other in step.after:
            self.depend(path, self.task_of(step.id), other)
        indexes = [self.index_source(loop, path) for loop in self.enclosing_loops(step.id)]
        self.dags[path].tasks[self.task_of(step.id)] = self.step_task(step, sources, indexes)

    def _condition(self, node: Condition, path: Path) -> None:
        branch_tasks: list[str] = []
        channels: dict[str, Source] = {}

        def resolve(operand: ParamRef | OutputRef | LoopItem) -> cel.Channel:
            source = self.source(operand, path)
            channels[source.channel] = source
            return cel.Channel(source.channel, source.type)

        try:
            test = cel.to_cel(node.test, resolve)
        except ConditionError as exc:
            raise NoKfpForm(f"this condition in CEL: {exc}") from None
        task_name = self.task_of(node.id)
        for branch, body, condition in (
            ("then", node.then, test),
            ("otherwise", node.otherwise, f"!({test})"),
        ):
            if not body:
                continue
            name = task_name
            if branch == "otherwise":
                name = self.unique(f"{task_name}-otherwise", self.task_names)
            dag = self._sub_dag(path, f"{node.id}.{branch}", name)
            dag.branch = branch
            task = self._dag_task(dag, f"{node.id}.{branch}")
            task["triggerPolicy"] = {"condition": condition}
            for channel, source in channels.items():
                task["inputs"]["parameters"][channel] = source.ref
                dag.inputs["parameters"][channel] = {
                    "parameterType": kx.parameter_type(source.type)
                }
            self.dags[path].tasks[name] = task
            branch_tasks.append(name)
        # The branches wait for whatever produced the values the test reads.
        for operand in graph.expr_operands(node.test):
            for producer in graph.producers(operand):
                for name in branch_tasks:
                    self.depend(path, name, producer)
        for branch, body in (("then", node.then), ("otherwise", node.otherwise)):
            if body:
                self._body(body, (*path, f"{node.id}.{branch}"))

    def _loop(self, node: Loop, path: Path) -> None:
        item_type = self.env.of(LoopItem(loop=node.id)) or "any"
        if types.is_artifact(item_type):
            raise NoKfpForm("a foreach over artifacts (KFP iterates over parameters only)")
        task_name = self.task_of(node.id)
        dag = self._sub_dag(path, node.id, task_name)
        dag.loop = node.id
        entry_channel = _loop_channel(task_name, "entry")
        dag.inputs["parameters"][entry_channel] = {"parameterType": "STRUCT"}
        task = self._dag_task(dag, node.id)
        items: JSON
        if not any(isinstance(inner, Step) for inner, _ in graph.walk(node.body)):
            # Nothing inside reads an item or an index (and no step names an image for the
            # entries task): iterate over the list as it is.
            dag.inputs["parameters"][entry_channel] = {
                "parameterType": kx.parameter_type(item_type)
            }
            items = self._bare_items(node, path, task)
        elif isinstance(node.items, Const):
            values = node.items.value
            assert isinstance(values, list)  # the IR's type check: a foreach takes a list
            written = loop_entries.entries(values)
            items = {"raw": json.dumps(written, sort_keys=True)}
        else:
            channel = self._runtime_entries(node, path)
            task["inputs"]["parameters"][channel.channel] = channel.ref
            dag.inputs["parameters"][channel.channel] = {"parameterType": "LIST"}
            items = {"inputParameter": channel.channel}
        task["parameterIterator"] = {"itemInput": entry_channel, "items": items}
        if node.parallelism:
            task["iteratorPolicy"] = {"parallelismLimit": node.parallelism}
        self.dags[path].tasks[task_name] = task
        self._body(node.body, dag.path)

    def _bare_items(self, loop: Loop, path: Path, task: JSON) -> JSON:
        """The items of a loop with no step inside, iterated over as they are."""
        if isinstance(loop.items, Const):
            return {"raw": json.dumps(loop.items.value, sort_keys=True)}
        source = self.source(loop.items, path)
        task["inputs"]["parameters"][source.channel] = source.ref
        self.dags[(*path, loop.id)].inputs["parameters"][source.channel] = {"parameterType": "LIST"}
        for producer in graph.producers(loop.items):
            self.depend(path, self.task_of(loop.id), producer)
        return {"inputParameter": source.channel}

    def _runtime_entries(self, loop: Loop, path: Path) -> Source:
        """The entries of a loop over a list known at run time, as the loop task at `path`
        reads them. The task writing them sits in the outermost DAG where the list is known (a
        loop over a parameter inside another loop gets its entries once, not per iteration)
        inside the innermost condition branch around the loop."""
        items = loop.items
        match items:
            case ParamRef():
                origin: Path = ()
            case LoopItem():
                origin = (*self.node_paths[items.loop], items.loop)
            case OutputRef() | Collect():
                origin = _common(self.node_paths[items.step], path)
            case Const():
                raise AssertionError("a constant list's entries are written into the spec")
            case _:
                assert_never(items)
        # Not out of a `when`/`otherwise` branch, though: nothing of a skipped branch runs.
        for depth in range(len(path), len(origin), -1):
            if self.dags[path[:depth]].branch:
                origin = path[:depth]
                break
        name = self.unique(f"{self.task_of(loop.id)}-entries", self.task_names)
        self.dags[origin].tasks[name] = self.entries_task(loop, self.source(items, origin))
        for producer in graph.producers(items):
            self.depend(origin, name, producer)
        # The task that waits for the entries: the loop task, or its ancestor in that DAG.
        waiting = self.task_of(loop.id)
        if origin != path:
            waiting = self.dags[path[: len(origin) + 1]].task
        self.dags[origin].deps.setdefault(waiting, set()).add(name)
        ref = {"taskOutputParameter": {"producerTask": name, "outputParameterKey": ENTRIES}}
        return self._pass_down(origin, path, Source(ref, f"{PREFIX}{name}-{ENTRIES}", "list"))

    def enclosing_loops(self, node_id: str) -> list[Loop]:
        """The loops around a node, outermost first."""
        found = []
        for key in self.node_paths[node_id]:
            loop = self.loops.get(key)
            if loop is not None:
                found.append(loop)
        return found

    def index_source(self, loop: Loop, at: Path) -> Source:
        """The current index of `loop` (text) as a task in the DAG at `at` reads it."""
        origin = (*self.node_paths[loop.id], loop.id)
        task = self.task_of(loop.id)
        selected = {
            "componentInputParameter": _loop_channel(task, "entry"),
            "parameterExpressionSelector": INDEX_SELECTOR,
        }
        return self._pass_down(origin, at, Source(selected, _loop_channel(task, "index"), "str"))

    # ----------------------------------------------------------------------------------------
    # Channels

    def read(self, binding: Binding, path: Path, reader: str) -> Source:
        """The source of a step input at `path`, with the reader's dependency recorded."""
        source = self.source(binding, path)
        for producer in graph.producers(binding):
            self.depend(path, reader, producer)
        return source

    def source(self, binding: Binding, at: Path) -> Source:
        """How a task in the DAG at `at` reads `binding`, plumbing DAG inputs/outputs as needed."""
        type_text = self.env.of(binding) or "any"
        match binding:
            case ParamRef():
                origin: Path = ()
                source = Source(
                    {"componentInputParameter": binding.param}, PREFIX + binding.param, type_text
                )
            case LoopItem():
                loop = self.loops[binding.loop]
                origin = (*self.node_paths[loop.id], loop.id)
                task = self.task_of(loop.id)
                selected = {
                    "componentInputParameter": _loop_channel(task, "entry"),
                    "parameterExpressionSelector": ITEM_SELECTOR,
                }
                source = Source(selected, _loop_channel(task, "value"), type_text)
            case OutputRef() | Collect():
                origin, source = self._surface(binding, at, type_text)
            case Const():
                raise AssertionError("constants are not channels")
            case _:
                assert_never(binding)
        return self._pass_down(origin, at, source)

    def _surface(
        self, binding: OutputRef | Collect, at: Path, type_text: str
    ) -> tuple[Path, Source]:
        producer_path = self.node_paths[binding.step]
        common = _common(producer_path, at)
        producer_task = self.task_of(binding.step)
        key = binding.output
        channel = f"{PREFIX}{producer_task}--{binding.output}"
        item_type = self.env.outputs.get((binding.step, binding.output), "any")
        is_artifact = types.is_artifact(item_type)
        collected = False
        for depth in range(len(producer_path), len(common), -1):
            dag = self.dags[producer_path[:depth]]
            if dag.loop:
                if not isinstance(binding, Collect) or binding.loop != dag.loop or collected:
                    raise NoKfpForm(
                        f"reading {binding.step!r}.{binding.output} outside foreach "
                        f"{dag.loop!r} without collect over it"
                    )
                if kx.carried_as_json_text(item_type):
                    raise NoKfpForm(
                        f"a collect of {binding.step!r}.{binding.output} of type {item_type} "
                        "(carried as JSON text, which KFP cannot gather faithfully)"
                    )
                collected = True
            elif dag.branch:
                raise NoKfpForm(
                    f"reading {binding.step!r}.{binding.output} outside the when/otherwise "
                    "branch that produces it"
                )
            kind = "artifacts" if is_artifact else "parameters"
            if kind == "parameters":
                dag.selectors[kind][channel] = {
                    "producerSubtask": producer_task,
                    "outputParameterKey": key,
                }
                definition: JSON = {
                    "parameterType": "LIST" if collected else kx.parameter_type(item_type)
                }
            else:
                dag.selectors[kind][channel] = {"producerSubtask": producer_task, "key": key}
                definition = kx.artifact_definition(type_text if collected else item_type)
            dag.outputs[kind][channel] = definition
            producer_task, key = dag.task, channel
        if is_artifact:
            ref: JSON = {
                "taskOutputArtifact": {"producerTask": producer_task, "outputArtifactKey": key}
            }
        else:
            ref = {
                "taskOutputParameter": {"producerTask": producer_task, "outputParameterKey": key}
            }
        return common, Source(ref, channel, type_text)

    def _pass_down(self, origin: Path, at: Path, source: Source) -> Source:
        ref = source.ref
        kind = source.kind
        for depth in range(len(origin) + 1, len(at) + 1):
            dag = self.dags[at[:depth]]
            if source.channel not in dag.inputs[kind]:
                if kind == "parameters":
                    definition: JSON = {"parameterType": kx.parameter_type(source.type)}
                else:
                    definition = kx.artifact_definition(source.type)
                dag.inputs[kind][source.channel] = definition
                parent = self.dags[at[: depth - 1]]
                parent.tasks[dag.task]["inputs"][kind][source.channel] = ref
            key = "componentInputParameter" if kind == "parameters" else "componentInputArtifact"
            ref = {key: source.channel}
        return Source(ref, source.channel, source.type)

    def depend(self, at: Path, reader: str, producer: str) -> None:
        """Make the reader's ancestor at the deepest common DAG wait for the producer's."""
        producer_path = self.node_paths[producer]
        common = _common(producer_path, at)
        if len(common) == len(producer_path):
            before = self.task_of(producer)
        else:
            before = self.dags[producer_path[: len(common) + 1]].task
        after = reader if len(common) == len(at) else self.dags[at[: len(common) + 1]].task
        if before != after:
            self.dags[common].deps.setdefault(after, set()).add(before)


def _loop_channel(loop_task: str, what: str) -> str:
    """The name of a loop's `entry` (the iterator input), or of the `value` / `index` selected
    from the entry for deeper DAGs."""
    return f"{PREFIX}{loop_task}-loop-{what}"


def _common(a: Path, b: Path) -> Path:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]
