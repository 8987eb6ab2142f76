"""SVG and PNG pictures: DOT text laid out by Graphviz.

The `graphviz` Python binding (the `graph` extra: `pip install 'pipec[graph]'`) runs the `dot`
program, which comes from the system's package manager, not from PyPI. Either missing is one
clear error that says how to install it; Mermaid and DOT text need neither.
"""

from __future__ import annotations

import importlib
import subprocess
from typing import Any

from pipec.ir.diagnostics import InvalidInput

FORMATS = ("mermaid", "dot", "svg", "png")
BINARY = ("png",)


class RendererMissing(InvalidInput):
    """The graphviz binding or the `dot` program is not installed."""


def render(dot_text: str, fmt: str) -> bytes:
    """Lay out `dot_text` with Graphviz's `dot` and return the picture (`svg` or `png`)."""
    try:
        graphviz: Any = importlib.import_module("graphviz")
    except ImportError:
        raise RendererMissing(
            f"--format {fmt} needs the graphviz Python package: pip install 'pipec[graph]' "
            "(and the Graphviz `dot` program from your system's package manager); "
            "--format mermaid and --format dot need nothing"
        ) from None
    try:
        picture: bytes = graphviz.Source(dot_text).pipe(format=fmt, engine="dot")
    except graphviz.ExecutableNotFound:
        raise RendererMissing(
            f"--format {fmt} needs the Graphviz `dot` program, which is not on PATH: install "
            "Graphviz with your system's package manager (apt-get install graphviz, dnf install "
            "graphviz, brew install graphviz); --format mermaid and --format dot need nothing"
        ) from None
    except subprocess.CalledProcessError as exc:
        # A Graphviz installed without its plugins (`dot -c` not run), say.
        said = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else ""
        raise RendererMissing(
            f"Graphviz `dot` failed to draw --format {fmt}: {' '.join(said.split()) or exc}"
        ) from None
    return picture
