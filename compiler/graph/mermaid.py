"""A diagram as Mermaid flowchart text: renders on GitHub and in most Markdown viewers, needs
nothing installed.

Shapes tell the kinds apart: steps are boxes, parameters stadiums, artifacts cylinders, condition
tests diamonds, loop items parallelograms; artifact and collect edges are thick, control and
`.after()` edges dotted. Labels are quoted with Mermaid's entity codes for the characters a quoted
label cannot hold, so no name or expression can break the text.
"""

from __future__ import annotations

from typing import assert_never

from pipec.graph.diagram import STATUS_COLOURS, Cluster, Diagram, DrawnEdge, DrawnNode

INDENT = "  "
CLASS_STYLES = {
    "step": "fill:#ffffff,stroke:#37474f,color:#111111",
    "param": "fill:#e3f2fd,stroke:#1565c0,color:#0d2a4a",
    "artifact": "fill:#fff8e1,stroke:#ef6c00,color:#3e2000",
    "test": "fill:#f3e5f5,stroke:#6a1b9a,color:#2a0a3a",
    "items": "fill:#e8f5e9,stroke:#2e7d32,color:#0b2a0d",
}


def to_mermaid(diagram: Diagram) -> str:
    """The Mermaid text of `diagram` (one trailing newline)."""
    lines = [f"%% pipeline {_comment(diagram.title)} (drawn by pipec)", "flowchart TB"]
    _cluster(diagram, diagram.root, lines, 1)
    lines.extend(INDENT + _edge(edge) for edge in diagram.edges)
    for name, style in CLASS_STYLES.items():
        lines.append(f"{INDENT}classDef {name} {style}")
    if diagram.has_states:
        for status, colour in STATUS_COLOURS.items():
            lines.append(f"{INDENT}classDef {status} fill:{colour},stroke:#37474f,color:#111111")
    return "\n".join(lines) + "\n"


def _cluster(diagram: Diagram, cluster: Cluster, lines: list[str], depth: int) -> None:
    indent = INDENT * depth
    for node_id in cluster.nodes:
        lines.append(indent + _node(diagram.nodes[node_id]))
    for sub in cluster.clusters:
        if not sub.nodes and not sub.clusters:
            continue  # an empty branch: nothing to draw
        lines.append(f'{indent}subgraph {sub.id}["{_quoted(sub.label)}"]')
        _cluster(diagram, sub, lines, depth + 1)
        lines.append(f"{indent}end")


def _node(node: DrawnNode) -> str:
    text = "<br/>".join(_quoted(line) for line in node.label)
    match node.kind:
        case "step":
            shape = f'["{text}"]'
        case "param":
            shape = f'(["{text}"])'
        case "artifact":
            shape = f'[("{text}")]'
        case "test":
            shape = f'{{"{text}"}}'
        case "items":
            shape = f'[/"{text}"/]'
        case _:
            assert_never(node.kind)
    return f"{node.id}{shape}:::{node.status or node.kind}"


def _edge(edge: DrawnEdge) -> str:
    match edge.kind:
        case "value" | "param" | "item":
            arrow = "-->"
        case "artifact" | "collect":
            arrow = "==>"
        case "control" | "after":
            arrow = "-.->"
        case _:
            assert_never(edge.kind)
    label = f'|"{_quoted(edge.label)}"|' if edge.label else ""
    return f"{edge.source} {arrow}{label} {edge.target}"


def _quoted(text: str) -> str:
    """Text safe inside a Mermaid double-quoted label (entity codes, as Mermaid spells them)."""
    out = []
    for ch in text:
        if ch in '"#<>&\\`':
            out.append(f"#{ord(ch)};")
        elif ch in "\r\n":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def _comment(text: str) -> str:
    return " ".join(text.split())
