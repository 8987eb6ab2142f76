"""What a picture shows, decided once for every format: nodes, edges and nested clusters.

Drawn from an `Outline` (see `pipec.graph.outline`):

* a **step** is a box (its display name; with run states, its status and time below);
* a **parameter** is a rounded node at the top, with an edge to each step or block reading it;
* an **artifact** (an output whose type is not a JSON value) is a node of its own between its
  step and the steps that read it; a **value** output is an edge, labelled with the output's
  name unless it is the single `output`;
* a **condition** is a cluster holding its test (a diamond with the expression) and one cluster
  per branch; dashed edges go from the test to the first steps of each branch;
* a **loop** is a cluster holding an *items* node (what it iterates over), with an `item` edge to
  each step reading the current item; a `collect` edge leaves it to the step gathering the
  results; a **nested pipeline** is a cluster named after it;
* `.after()` is a dotted edge.

Drawing ids carry an upper-case prefix (`S_`, `P_`, `A_`, `T_`, `L_`, `C_`), which step ids
(lower case) can never produce, so no two drawn things share an id. Everything is emitted in the
pipeline's written order, so the text of a picture is deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, assert_never

from pipec.graph.outline import Block, Outline, StepBox
from pipec.ir import graph as ir_graph
from pipec.ir import types
from pipec.ir.expr_print import format_expr, format_operand, format_value
from pipec.ir.model import Binding, Collect, Const, LoopItem, OutputRef, ParamRef

NodeKind = Literal["step", "param", "artifact", "test", "items"]
EdgeKind = Literal["value", "artifact", "param", "item", "collect", "control", "after"]
ClusterKind = Literal["root", "condition", "then", "otherwise", "loop", "group"]

STATUS_COLOURS = {
    "succeeded": "#c8e6c9",
    "cached": "#b3e5fc",
    "running": "#fff59d",
    "retrying": "#f8bbd0",
    "failed": "#ef9a9a",
    "upstream_failed": "#ffccbc",
    "interrupted": "#d1c4e9",
    "skipped": "#eeeeee",
    "pending": "#ffffff",
}
"""Every status a step of a run can be drawn with (`pending`: not started, or not recorded), and
its fill (the same in Mermaid, DOT and the web view)."""


@dataclass(frozen=True)
class StepState:
    """How a step did in a run: its status (over all its iterations) and a short detail line
    (time, cache hit, iteration counts)."""

    status: str
    detail: str = ""


@dataclass(frozen=True)
class DrawnNode:
    """One node: `ref` is the step id or parameter name it stands for."""

    id: str
    kind: NodeKind
    label: tuple[str, ...]
    ref: str
    tooltip: tuple[str, ...] = ()
    status: str | None = None


@dataclass(frozen=True)
class DrawnEdge:
    """One edge (`label` may be empty)."""

    source: str
    target: str
    kind: EdgeKind
    label: str = ""


@dataclass
class Cluster:
    """A box around nodes: the whole picture (`root`), a condition, a branch, a loop, a group."""

    id: str
    kind: ClusterKind
    label: str
    nodes: list[str] = field(default_factory=list)
    clusters: list[Cluster] = field(default_factory=list)


@dataclass
class Diagram:
    """A picture, ready for any format."""

    title: str
    nodes: dict[str, DrawnNode]
    edges: list[DrawnEdge]
    root: Cluster

    @property
    def has_states(self) -> bool:
        """Whether it shows a run (steps carry statuses)."""
        return any(node.status is not None for node in self.nodes.values())


def step_node(step_id: str) -> str:
    """The drawing id of a step (also used by the web view to find it in the SVG)."""
    return f"S_{step_id}"


def draw(outline: Outline, states: Mapping[str, StepState] | None = None) -> Diagram:
    """The picture of `outline`; with `states` (step id -> state) it shows a run."""
    return _Drawer(outline, states).diagram()


class _Drawer:
    def __init__(self, outline: Outline, states: Mapping[str, StepState] | None) -> None:
        self.outline = outline
        self.states = states
        self.nodes: dict[str, DrawnNode] = {}
        self.edges: list[DrawnEdge] = []
        self.seen_edges: set[DrawnEdge] = set()
        self.root = Cluster("C_", "root", outline.name)

    def diagram(self) -> Diagram:
        for param in self.outline.params:
            default = "" if param.required else f" = {format_value(param.default)}"
            self._node(
                self.root, f"P_{param.name}", "param", (f"{param.name}: {param.type}",),
                param.name, (f"parameter {param.name}: {param.type}{default}",),
            )
        self._body(self.outline.body, self.root)
        self._edges(self.outline.body)
        return Diagram(self.outline.name, self.nodes, self.edges, self.root)

    # ------------------------------------------------------------------------------- nodes

    def _node(
        self, cluster: Cluster, node_id: str, kind: NodeKind, label: tuple[str, ...], ref: str,
        tooltip: tuple[str, ...] = (), status: str | None = None,
    ) -> None:
        self.nodes[node_id] = DrawnNode(node_id, kind, label, ref, tooltip, status)
        cluster.nodes.append(node_id)

    def _body(self, body: tuple[StepBox | Block, ...], cluster: Cluster) -> None:
        for item in body:
            if isinstance(item, StepBox):
                self._step(item, cluster)
            else:
                self._block(item, cluster)

    def _step(self, step: StepBox, cluster: Cluster) -> None:
        label: tuple[str, ...] = (step.name,)
        status = None
        if self.states is not None:
            state = self.states.get(step.id, StepState("pending"))
            status = state.status
            label += (" · ".join(p for p in (state.status, state.detail) if p),)
        tooltip = (
            f"step {step.id}" + (f" ({step.name})" if step.name != step.id else ""),
            f"calls {step.call}",
            *step.options,
            *(f"output {name}: {kind}" for name, kind in step.outputs.items()),
        )
        self._node(cluster, step_node(step.id), "step", label, step.id, tooltip, status)
        for name, kind in step.outputs.items():
            if not types.is_value(kind):
                node_id = _artifact_node(step.id, name)
                self._node(
                    cluster, node_id, "artifact", (f"{name}: {_short_type(kind)}",),
                    f"{step.id}.{name}", (f"artifact {name} of step {step.id}: {kind}",),
                )
                self._edge(step_node(step.id), node_id, "artifact")

    def _block(self, block: Block, parent: Cluster) -> None:
        match block.kind:
            case "condition":
                assert block.test is not None
                text = format_expr(block.test)
                cluster = Cluster(f"C_{block.id}", "condition", "when")
                self._node(
                    cluster, f"T_{block.id}", "test", (text,), block.id,
                    (f"condition {block.id}: {text}",),
                )
                for branch in block.body:
                    assert isinstance(branch, Block)
                    sub = Cluster(f"C_{block.id}_{branch.kind.upper()}", branch.kind, branch.kind)
                    self._body(branch.body, sub)
                    cluster.clusters.append(sub)
            case "loop":
                assert block.items is not None
                source = _binding_text(block.items)
                limit = f" ({block.parallelism} at a time)" if block.parallelism else ""
                cluster = Cluster(f"C_{block.id}", "loop", f"foreach{limit}")
                self._node(
                    cluster, f"L_{block.id}", "items", (source,), block.id,
                    (f"loop {block.id} over {source}",),
                )
                self._body(block.body, cluster)
            case "group":
                cluster = Cluster(f"C_{block.id}", "group", f"pipeline {block.pipeline}")
                self._body(block.body, cluster)
            case "then" | "otherwise":
                raise AssertionError("branches are drawn by their condition")
            case _:
                assert_never(block.kind)
        parent.clusters.append(cluster)

    # ------------------------------------------------------------------------------- edges

    def _edge(self, source: str, target: str, kind: EdgeKind, label: str = "") -> None:
        edge = DrawnEdge(source, target, kind, label)
        if edge not in self.seen_edges and source in self.nodes and target in self.nodes:
            self.seen_edges.add(edge)
            self.edges.append(edge)

    def _from(self, binding: Binding, target: str) -> None:
        """The edge that brings `binding` to the node `target`."""
        match binding:
            case Const():
                pass
            case ParamRef():
                self._edge(f"P_{binding.param}", target, "param")
            case LoopItem():
                self._edge(f"L_{binding.loop}", target, "item", "item")
            case OutputRef():
                source, kind = self._output(binding.step, binding.output)
                label = "" if binding.output == "output" or kind == "artifact" else binding.output
                self._edge(source, target, kind, label)
            case Collect():
                source, _ = self._output(binding.step, binding.output)
                self._edge(source, target, "collect", "collect")
            case _:
                assert_never(binding)

    def _output(self, step_id: str, output: str) -> tuple[str, EdgeKind]:
        artifact = _artifact_node(step_id, output)
        if artifact in self.nodes:
            return artifact, "artifact"
        return step_node(step_id), "value"

    def _edges(self, body: tuple[StepBox | Block, ...]) -> None:
        for item in body:
            if isinstance(item, StepBox):
                for binding in item.inputs.values():
                    self._from(binding, step_node(item.id))
                for before in item.after:
                    self._edge(step_node(before), step_node(item.id), "after", "after")
                continue
            if item.kind == "condition" and item.test is not None:
                for operand in ir_graph.expr_operands(item.test):
                    self._from(operand, f"T_{item.id}")
                for branch in item.body:
                    assert isinstance(branch, Block)
                    for entry in _entries(branch.body, _steps_in(branch.body)):
                        self._edge(f"T_{item.id}", entry, "control", branch.kind)
            if item.kind == "loop" and item.items is not None:
                self._from(item.items, f"L_{item.id}")
            self._edges(item.body)


def _artifact_node(step_id: str, output: str) -> str:
    # Step ids are lower case, so the `_O_` after one cannot be part of it.
    return f"A_{step_id}_O_{output}"


def _short_type(kind: str) -> str:
    """`artifact[sklearn.svm.SVC]` -> `SVC`; other types as written."""
    if kind.startswith("artifact[") and kind.endswith("]"):
        return kind[len("artifact[") : -1].rsplit(".", 1)[-1]
    return kind


def _binding_text(binding: Binding) -> str:
    if isinstance(binding, Collect):
        return f"collect(steps.{binding.step}.{binding.output})"
    return format_operand(binding)


def _steps_in(body: tuple[StepBox | Block, ...]) -> set[str]:
    found: set[str] = set()
    for item in body:
        if isinstance(item, StepBox):
            found.add(item.id)
        else:
            found |= _steps_in(item.body)
    return found


def _reads(step: StepBox) -> set[str]:
    """The steps a step reads from or waits for."""
    found = set(step.after)
    for binding in step.inputs.values():
        if isinstance(binding, OutputRef | Collect):
            found.add(binding.step)
    return found


def _entries(body: tuple[StepBox | Block, ...], inside: set[str]) -> list[str]:
    """The nodes a branch starts with: its steps that wait for nothing else in the branch, and
    the head (test or items node) of its blocks."""
    found: list[str] = []
    for item in body:
        if isinstance(item, StepBox):
            if not _reads(item) & inside:
                found.append(step_node(item.id))
        elif item.kind == "condition":
            found.append(f"T_{item.id}")
        elif item.kind == "loop":
            found.append(f"L_{item.id}")
        else:
            found.extend(_entries(item.body, inside))
    return found
