"""`pipec ui`: a small read-only web view of the project's runs (the `ui` extra).

The command lives here with no web dependency, so `pipec --help` never imports one; the server
(`pipec.ui.app`, on Starlette and uvicorn) is imported when the command runs, and a missing
extra is one error that names it. `pages` renders HTML (everything escaped), `previews` shows
outputs, `app` maps URLs to pages and serves output files (only files inside an output's folder).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click

from pipec import loader
from pipec.ir.diagnostics import InvalidInput

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


class ExtraMissing(InvalidInput):
    """The `ui` extra is not installed."""


def load_app_module() -> Any:
    """`pipec.ui.app`, or an error that names the extra to install."""
    try:
        return importlib.import_module("pipec.ui.app")
    except ImportError as exc:
        missing = exc.name or "a web dependency"
        raise ExtraMissing(
            f"pipec ui needs {missing}, from the ui extra: pip install 'pipec[ui]'"
        ) from None


@click.command("ui")
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to listen on (anything but loopback shows your runs to others).")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535))
@click.option("--project", type=click.Path(path_type=Path, file_okay=False),
              help="The project whose runs to show (default: the one holding the current folder).")
def ui(host: str, port: int, project: Path | None) -> None:
    """Serve a read-only web view of this project's runs: runs, a run's DAG coloured by status
    (refreshed while it runs), each step's log and outputs."""
    root = loader.project_root((project or Path.cwd()).resolve())
    module = load_app_module()
    module.serve(root, host, port)
