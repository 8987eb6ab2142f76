"""A diagram as Graphviz DOT text (what `--format dot` prints and SVG/PNG are rendered from).

Clusters are Graphviz clusters (conditions and loops dashed, branches dotted, nested pipelines
solid). Every node carries an SVG `id` (`step-<id>`, `param-<name>`, ...) and `class` (its kind,
and its status when a run is drawn), and a tooltip with the step's component and options, so the
SVG can be styled, searched and hovered. Strings are quoted with DOT's escapes only.
"""

from __future__ import annotations

from typing import assert_never

from pipec.graph.diagram import STATUS_COLOURS, Cluster, Diagram, DrawnEdge, DrawnNode
from pipec.graph.mermaid import CLASS_STYLES

INDENT = "  "
FONT = "Helvetica"


def to_dot(diagram: Diagram) -> str:
    """The DOT text of `diagram` (one trailing newline)."""
    lines = [
        f"digraph {_q(diagram.title)} {{",
        f'{INDENT}graph [rankdir=TB, compound=true, fontname="{FONT}", fontsize=12, '
        f"label={_q(diagram.title)}, labelloc=t, nodesep=0.35, ranksep=0.45, tooltip=\" \"];",
        f'{INDENT}node [fontname="{FONT}", fontsize=10, style="filled", penwidth=1.2];',
        f'{INDENT}edge [fontname="{FONT}", fontsize=9, color="#546e7a"];',
    ]
    _cluster(diagram, diagram.root, lines, 1)
    lines.extend(INDENT + _edge(edge, diagram) for edge in diagram.edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


def svg_id(node: DrawnNode) -> str:
    """The SVG element id of a node (`step-train`, `param-lr`, ...)."""
    return f"{node.kind}-{node.ref}"


def _cluster(diagram: Diagram, cluster: Cluster, lines: list[str], depth: int) -> None:
    indent = INDENT * depth
    for node_id in cluster.nodes:
        lines.append(indent + _node(diagram.nodes[node_id]))
    for sub in cluster.clusters:
        if not sub.nodes and not sub.clusters:
            continue
        style = {
            "condition": "dashed,rounded",
            "then": "dotted,rounded",
            "otherwise": "dotted,rounded",
            "loop": "dashed,rounded",
            "group": "solid,rounded",
            "root": "solid",
        }[sub.kind]
        lines.append(f"{indent}subgraph {_q('cluster_' + sub.id)} {{")
        inner = indent + INDENT
        lines.append(
            f"{inner}graph [label={_q(sub.label)}, style={_q(style)}, color=\"#78909c\", "
            f"fontsize=10, id={_q('cluster-' + sub.kind + '-' + sub.id[2:])}, "
            f"class={_q(sub.kind)}, tooltip={_q(sub.label)}];"
        )
        _cluster(diagram, sub, lines, depth + 1)
        lines.append(f"{indent}}}")


def _node(node: DrawnNode) -> str:
    match node.kind:
        case "step":
            shape = "box"
        case "param":
            shape = "box"
        case "artifact":
            shape = "cylinder"
        case "test":
            shape = "diamond"
        case "items":
            shape = "parallelogram"
        case _:
            assert_never(node.kind)
    style = "filled,rounded" if node.kind in ("step", "param") else "filled"
    if node.kind == "param":
        style += ",dashed"
    colours = dict(_parse_style(CLASS_STYLES[node.kind]))
    fill = STATUS_COLOURS.get(node.status, colours["fill"]) if node.status else colours["fill"]
    classes = node.kind + (f" {node.status}" if node.status else "")
    attrs = [
        f"id={_q(svg_id(node))}",
        f"class={_q(classes)}",
        f"shape={shape}",
        f"style={_q(style)}",
        f"fillcolor={_q(fill)}",
        f"color={_q(colours['stroke'])}",
        f"label={_q(chr(10).join(node.label))}",
        f"tooltip={_q(chr(10).join(node.tooltip or node.label))}",
    ]
    return f"{_q(node.id)} [{', '.join(attrs)}];"


def _edge(edge: DrawnEdge, diagram: Diagram) -> str:
    match edge.kind:
        case "value" | "param" | "item":
            style = "solid"
        case "artifact" | "collect":
            style = "bold"
        case "control":
            style = "dashed"
        case "after":
            style = "dotted"
        case _:
            assert_never(edge.kind)
    attrs = [f"class={_q(edge.kind)}", f"style={style}"]
    if edge.label:
        attrs.append(f"label={_q(edge.label)}")
    source = diagram.nodes[edge.source]
    target = diagram.nodes[edge.target]
    attrs.append(f"tooltip={_q(f'{source.ref} -> {target.ref}')}")
    return f"{_q(edge.source)} -> {_q(edge.target)} [{', '.join(attrs)}];"


def _parse_style(text: str) -> list[tuple[str, str]]:
    pairs = (part.partition(":") for part in text.split(","))
    return [(key, value) for key, _, value in pairs]


def _q(text: str) -> str:
    """A DOT quoted string; a newline becomes DOT's centred line break `\\n`."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n") + '"'
