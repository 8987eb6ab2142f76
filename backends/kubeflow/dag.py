"""IR tree -> the DAGs of a KFP PipelineSpec: one DAG per IR scope, one task per step.

The IR's scopes map one to one onto KFP sub-DAGs: a `when` branch is a DAG task with a trigger
policy (the `otherwise` branch tests the negation), a `foreach` is a DAG task with an iterator
policy, a nested pipeline is a plain sub-DAG. This module walks the IR and adds those tasks; every
value a task reads from another DAG level, and the dependency that comes with it, goes through
the channels (channels.py); the DAGs themselves and their ComponentSpec form are dag_model.py.

A `foreach` iterates over entries `{"index": "<i>", "item": <item>}` (runtime/loop_entries.py), so
that a step can know its iteration (KFP renders no index); channels.py says how readers select
the item or the index out of the current entry. A constant list's entries are written into the
spec; any other list goes through a task that writes them at run time (`EntriesTask`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import assert_never

from pipec.backends.common.conditions import ConditionError
from pipec.backends.diagnostics import unsupported_feature
from pipec.backends.kubeflow import cel
from pipec.backends.kubeflow import components as kx
from pipec.backends.kubeflow.channels import PREFIX, Channels, Source, loop_channel
from pipec.backends.kubeflow.dag_model import JSON, Dag, NoKfpForm, Path, common_path, task_name
from pipec.backends.runtime import loop_entries
from pipec.ir import graph, types
from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import (
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
        self.dags: dict[Path, Dag] = {(): Dag(())}
        self.channels = Channels(pipeline, self.dags)
        self.task_names: set[str] = {task_name(i) for i in self.channels.node_paths}
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
                        dag = self._sub_dag(path, node.id, task_name(node.id))
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
                sources[name] = self.channels.read(binding, path, task_name(step.id))
        for other in step.after:
            self.channels.depend(path, task_name(step.id), other)
        indexes = self.channels.indexes(step.id, path)
        self.dags[path].tasks[task_name(step.id)] = self.step_task(step, sources, indexes)

    def _condition(self, node: Condition, path: Path) -> None:
        branch_tasks: list[str] = []
        channels: dict[str, Source] = {}

        def resolve(operand: ParamRef | OutputRef | LoopItem) -> cel.Channel:
            source = self.channels.source(operand, path)
            channels[source.channel] = source
            return cel.Channel(source.channel, source.type)

        try:
            test = cel.to_cel(node.test, resolve)
        except ConditionError as exc:
            raise NoKfpForm(f"this condition in CEL: {exc}") from None
        test_task = task_name(node.id)
        for branch, body, condition in (
            ("then", node.then, test),
            ("otherwise", node.otherwise, f"!({test})"),
        ):
            if not body:
                continue
            name = test_task
            if branch == "otherwise":
                name = self.unique(f"{test_task}-otherwise", self.task_names)
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
                    self.channels.depend(path, name, producer)
        for branch, body in (("then", node.then), ("otherwise", node.otherwise)):
            if body:
                self._body(body, (*path, f"{node.id}.{branch}"))

    def _loop(self, node: Loop, path: Path) -> None:
        item_type = self.channels.env.of(LoopItem(loop=node.id)) or "any"
        if types.is_artifact(item_type):
            raise NoKfpForm("a foreach over artifacts (KFP iterates over parameters only)")
        loop_task = task_name(node.id)
        dag = self._sub_dag(path, node.id, loop_task)
        dag.loop = node.id
        entry_channel = loop_channel(loop_task, "entry")
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
        self.dags[path].tasks[loop_task] = task
        self._body(node.body, dag.path)

    def _bare_items(self, loop: Loop, path: Path, task: JSON) -> JSON:
        """The items of a loop with no step inside, iterated over as they are."""
        if isinstance(loop.items, Const):
            return {"raw": json.dumps(loop.items.value, sort_keys=True)}
        source = self.channels.source(loop.items, path)
        task["inputs"]["parameters"][source.channel] = source.ref
        self.dags[(*path, loop.id)].inputs["parameters"][source.channel] = {"parameterType": "LIST"}
        for producer in graph.producers(loop.items):
            self.channels.depend(path, task_name(loop.id), producer)
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
                origin = (*self.channels.node_paths[items.loop], items.loop)
            case OutputRef() | Collect():
                origin = common_path(self.channels.node_paths[items.step], path)
            case Const():
                raise AssertionError("a constant list's entries are written into the spec")
            case _:
                assert_never(items)
        # Not out of a `when`/`otherwise` branch, though: nothing of a skipped branch runs.
        for depth in range(len(path), len(origin), -1):
            if self.dags[path[:depth]].branch:
                origin = path[:depth]
                break
        name = self.unique(f"{task_name(loop.id)}-entries", self.task_names)
        self.dags[origin].tasks[name] = self.entries_task(loop, self.channels.source(items, origin))
        for producer in graph.producers(items):
            self.channels.depend(origin, name, producer)
        # The task that waits for the entries: the loop task, or its ancestor in that DAG.
        waiting = task_name(loop.id)
        if origin != path:
            waiting = self.dags[path[: len(origin) + 1]].task
        self.dags[origin].deps.setdefault(waiting, set()).add(name)
        ref = {"taskOutputParameter": {"producerTask": name, "outputParameterKey": ENTRIES}}
        entries = Source(ref, f"{PREFIX}{name}-{ENTRIES}", "list")
        return self.channels.pass_down(origin, path, entries)
