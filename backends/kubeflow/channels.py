"""How a task in one KFP DAG reads a value given or made in another: channels and dependencies.

A KFP task only sees its own DAG's inputs and its sibling tasks' outputs, so every value read
across DAG levels is plumbed:

* down: each DAG between the source and the reader declares an input (`pipelinechannel--...`,
  KFP's own naming) that its parent task passes in;
* up: each DAG between a producer and the level where the reader sits declares an output taken
  from its child; crossing a `foreach` boundary turns the output into the list of all iterations
  (KFP's `dsl.Collected`), which is exactly pipec's `collect`: a LIST parameter for values, an
  artifact list (`isArtifactList`) for artifacts, which every DAG it then crosses declares too.

`dependentTasks` are derived the same way: a reader depends on the sibling (at the deepest common
DAG) that contains its producer, for data, `.after()` and the inputs of enclosing blocks alike.

A loop DAG's iterator input holds the current entry `{"index": "<i>", "item": <item>}`
(`pipelinechannel--<loop>-loop-entry`; dag.py says where the entries come from). Readers take
`item` or `index` out of it with a `parameterExpressionSelector`, as KFP's compiler reads a field
of a loop item, once, where they leave the loop DAG: a deeper DAG gets the selected value as its
own input (`...-loop-value`, `...-loop-index`). No channel name ends in `-loop-item`: kfp.local
replaces such inputs of a loop task by its own current item.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_never

from pipec.backends.kubeflow import components as kx
from pipec.backends.kubeflow.dag_model import JSON, Dag, NoKfpForm, Path, common_path, task_name
from pipec.backends.runtime import loop_entries
from pipec.ir import graph, types
from pipec.ir.model import Binding, Collect, Const, LoopItem, OutputRef, ParamRef, Pipeline

PREFIX = "pipelinechannel--"
ITEM_SELECTOR = f'parseJson(string_value)["{loop_entries.ITEM}"]'
INDEX_SELECTOR = f'parseJson(string_value)["{loop_entries.INDEX}"]'


@dataclass(frozen=True)
class Source:
    """A value as one DAG sees it: how a task input reads it, its channel name, its type."""

    ref: JSON
    channel: str
    type: str

    @property
    def kind(self) -> str:
        return "artifacts" if kx.travels_as_artifact(self.type) else "parameters"


def loop_channel(loop_task: str, what: str) -> str:
    """The name of a loop's `entry` (the iterator input), or of the `value` / `index` selected
    from the entry for deeper DAGs."""
    return f"{PREFIX}{loop_task}-loop-{what}"


class Channels:
    """The channels between the DAGs of one pipeline: where each node sits (`node_paths`), the
    type of every value (`env`), and the inputs, outputs and dependencies a read adds to `dags`
    (shared with the walk that adds their tasks)."""

    def __init__(self, pipeline: Pipeline, dags: dict[Path, Dag]) -> None:
        self.env = graph.TypeEnv(pipeline)
        self.node_paths = {
            node_id: tuple(s.key for s in scopes)
            for node_id, scopes in graph.node_scopes(pipeline).items()
        }
        self.loops = graph.loops(pipeline)
        self.dags = dags

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
                task = task_name(loop.id)
                selected = {
                    "componentInputParameter": loop_channel(task, "entry"),
                    "parameterExpressionSelector": ITEM_SELECTOR,
                }
                source = Source(selected, loop_channel(task, "value"), type_text)
            case OutputRef() | Collect():
                origin, source = self._surface(binding, at, type_text)
            case Const():
                raise AssertionError("constants are not channels")
            case _:
                assert_never(binding)
        return self.pass_down(origin, at, source)

    def indexes(self, node_id: str, at: Path) -> list[Source]:
        """The current index (text) of every loop around a node, outermost first, as a task in
        the DAG at `at` reads them."""
        found = []
        for key in self.node_paths[node_id]:
            loop = self.loops.get(key)
            if loop is None:
                continue
            origin = (*self.node_paths[loop.id], loop.id)
            task = task_name(loop.id)
            selected = {
                "componentInputParameter": loop_channel(task, "entry"),
                "parameterExpressionSelector": INDEX_SELECTOR,
            }
            index = Source(selected, loop_channel(task, "index"), "str")
            found.append(self.pass_down(origin, at, index))
        return found

    def _surface(
        self, binding: OutputRef | Collect, at: Path, type_text: str
    ) -> tuple[Path, Source]:
        producer_path = self.node_paths[binding.step]
        common = common_path(producer_path, at)
        producer_task = task_name(binding.step)
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

    def pass_down(self, origin: Path, at: Path, source: Source) -> Source:
        """`source`, as known in the DAG at `origin`, as a task in the DAG at `at` (inside it)
        reads it: each DAG in between declares it as an input its parent task passes in."""
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
        common = common_path(producer_path, at)
        if len(common) == len(producer_path):
            before = task_name(producer)
        else:
            before = self.dags[producer_path[: len(common) + 1]].task
        after = reader if len(common) == len(at) else self.dags[at[: len(common) + 1]].task
        if before != after:
            self.dags[common].deps.setdefault(after, set()).add(before)
