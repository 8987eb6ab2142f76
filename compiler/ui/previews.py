"""Output previews for `pipec ui`'s step page: what a person wants to see of an output.

JSON values are shown as stored; a DataFrame as the head of its table; a numpy array as its
shape and first values; image files inline; every file of an output folder as a download link.
Pickled values are never unpickled to show them (loading runs code): they are offered as files.
Everything is escaped (`pages.esc`); previews read at most `PREVIEW_BYTES` of a value's text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pipec.backends.runtime import store
from pipec.ui.pages import esc, url

PREVIEW_BYTES = 20_000
"""A JSON value or array text longer than this is cut (the file downloads whole)."""
HEAD_ROWS = 10
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}
LISTED_FILES = 200
"""At most this many files of one output are listed."""


def output_html(run_id: str, step_label: str, output: Any) -> str:
    """One output's section: name, type, location, preview, files."""
    head = (
        f'<section class="output" data-output="{esc(output.name)}">'
        f"<h3>{esc(output.name)} <small class=\"muted\">{esc(output.type)}</small></h3>"
        f"<p><code>{esc(output.uri)}</code></p>"
    )
    if not output.exists:
        return head + '<p class="muted">no longer in the artifact store</p></section>'
    if store.is_remote(output.uri):
        body = _value(output) if output.is_value else ""
        return head + body + '<p class="muted">in an object store: not served here</p></section>'
    return head + _preview(output) + _files(run_id, step_label, output) + "</section>"


def _preview(output: Any) -> str:
    match output.materializer:
        case "json":
            return _value(output)
        case "pandas":
            return _frame(output)
        case "numpy":
            return _array(output)
        case _:
            return ""


def _value(output: Any) -> str:
    text = output.value_json
    if text is None:
        text = json.dumps(output.load(), sort_keys=True, indent=1)
    return f'<pre class="value">{esc(_cut(text))}</pre>'


def _frame(output: Any) -> str:
    try:
        frame = output.load()
        shown = frame.head(HEAD_ROWS).to_html(escape=True, border=0)
    except Exception as exc:  # pandas or pyarrow missing here: say so, offer the file
        return f'<p class="muted">no preview ({esc(type(exc).__name__)}: {esc(exc)})</p>'
    rows = getattr(frame, "shape", ("?",))[0]
    return f"<p>{esc(rows)} rows; the first {HEAD_ROWS}:</p>{shown}"


def _array(output: Any) -> str:
    try:
        array = output.load()
    except Exception as exc:  # numpy missing here
        return f'<p class="muted">no preview ({esc(type(exc).__name__)}: {esc(exc)})</p>'
    shape = getattr(array, "shape", ())
    return f'<p>shape {esc(shape)}</p><pre class="value">{esc(_cut(repr(array)))}</pre>'


def _files(run_id: str, step_label: str, output: Any) -> str:
    base = store.local_path(output.uri)
    items: list[str] = []
    for path in sorted(_walk(base))[:LISTED_FILES]:
        relative = path.relative_to(base).as_posix()
        link = url("runs", run_id, "steps", step_label, "outputs", output.name, "files") + "/"
        link += "/".join(url(part)[1:] for part in relative.split("/"))
        size = path.stat().st_size
        item = f'<li><a href="{link}" download>{esc(relative)}</a> ({size:,} bytes)'
        if path.suffix.lower() in IMAGE_SUFFIXES:
            item += f'<br><img src="{link}" alt="{esc(relative)}" style="max-width:40em">'
        items.append(item + "</li>")
    return "<ul class=\"files\">" + "".join(items) + "</ul>" if items else ""


def _walk(base: Path) -> list[Path]:
    found: list[Path] = []
    for folder, _, names in os.walk(base):  # symlinks to folders are not followed
        found.extend(Path(folder) / name for name in names)
    return found


def file_in(uri: str, relative: str) -> Path | None:
    """The file `relative` inside the local output at `uri`, or None when it names anything
    else (a path outside the output folder, a symlink leading out, a folder, nothing)."""
    base = store.local_path(uri).resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base) or not target.is_file():
        return None
    return target


def _cut(text: str) -> str:
    if len(text) <= PREVIEW_BYTES:
        return text
    return text[:PREVIEW_BYTES] + f"\n... ({len(text) - PREVIEW_BYTES:,} more characters)"
