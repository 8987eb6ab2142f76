"""Pictures of pipelines and runs: Mermaid and DOT text, SVG and PNG through Graphviz.

They are target-neutral and read the IR (or a run's stored plan), so they live in the front end
beside the driver, not in `pipec.ir` (which stays free of presentation) nor in a target's
backend. `outline` reads a pipeline or a plan, `diagram` decides what is drawn, `mermaid` and
`dot` write it, `render` lays DOT out with Graphviz.

    from pipec.graph import picture
    text = picture(outline.of_pipeline(pipeline), "mermaid")
"""

from __future__ import annotations

from collections.abc import Mapping

from pipec.graph.diagram import StepState, draw
from pipec.graph.dot import to_dot
from pipec.graph.mermaid import to_mermaid
from pipec.graph.outline import Outline
from pipec.graph.render import FORMATS, render


def picture(
    outline: Outline, fmt: str, states: Mapping[str, StepState] | None = None
) -> bytes:
    """The picture of `outline` (with `states`: a run of it) in `fmt` (see `FORMATS`)."""
    diagram = draw(outline, states)
    if fmt == "mermaid":
        return to_mermaid(diagram).encode("utf-8")
    text = to_dot(diagram)
    if fmt == "dot":
        return text.encode("utf-8")
    return render(text, fmt)


__all__ = ["FORMATS", "Outline", "StepState", "picture"]
