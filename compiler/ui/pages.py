"""The HTML pages of `pipec ui`: plain strings, every value escaped where it is inserted.

Nothing here imports a web library, so the pages are tested like any function. Every piece of
text that comes from a run (names, parameter values, output values, logs, reasons) goes through
`esc` (text and attribute values) or `url` (path segments); the only markup inserted unescaped
is the run's SVG, which Graphviz wrote from DOT text whose strings `pipec.graph.dot` quoted, and
which Graphviz escapes in turn. The app also sends a Content-Security-Policy that allows no
script at all, so even markup that got through could not run.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

from pipec.graph.diagram import STATUS_COLOURS

REFRESH_SECONDS = 2
"""A page of a run that is still going reloads itself this often (no script needed)."""

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#f3f3f3}
pre{background:#f7f7f7;border:1px solid #ddd;padding:.6em;overflow:auto;max-height:40em}
.status{padding:0 .4em;border-radius:.3em}nav{margin-bottom:1em}nav a{margin-right:1em}
.graph svg{max-width:100%;height:auto}.muted{color:#777}
""" + "".join(f".s-{name}{{background:{colour}}}" for name, colour in STATUS_COLOURS.items())


def esc(value: object) -> str:
    """Text safe inside an element or a quoted attribute."""
    return html.escape(str(value), quote=True)


def url(*segments: str, query: dict[str, str] | None = None) -> str:
    """A path of percent-encoded segments (a step label `train[2]`, a run id, a file path)."""
    path = "/" + "/".join(quote(s, safe="") for s in segments)
    return path + ("?" + urlencode(query) if query else "")


def status(name: str) -> str:
    """A status as a coloured badge."""
    css = name if name in STATUS_COLOURS else "pending"
    return f'<span class="status s-{esc(css)}" data-status="{esc(name)}">{esc(name)}</span>'


def seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}s"


def when(epoch: float | None) -> str:
    return "" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def layout(title: str, body: str, *, refresh: bool = False) -> str:
    """A whole page."""
    meta = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)} - pipec</title>{meta}<style>{STYLE}</style></head><body>"
        f'<nav><a href="/">runs</a></nav><h1>{esc(title)}</h1>{body}</body></html>\n'
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], css_id: str = "") -> str:
    """A table; `rows` hold HTML already escaped by the caller."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    thead = f"<thead><tr>{head}</tr></thead>" if any(headers) else ""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    ident = f' id="{esc(css_id)}"' if css_id else ""
    return f"<table{ident}>{thead}<tbody>{body}</tbody></table>"


def runs_page(
    runs: Sequence[Any], pipelines: Sequence[str], pipeline: str, chosen: str,
    statuses: Sequence[str],
) -> str:
    """The runs list with its filter form (a plain GET form: filters are in the URL)."""
    def options(values: Sequence[str], selected: str) -> str:
        found = ['<option value="">all</option>']
        for value in values:
            mark = " selected" if value == selected else ""
            found.append(f'<option value="{esc(value)}"{mark}>{esc(value)}</option>')
        return "".join(found)

    form = (
        '<form method="get" action="/" id="filters">'
        f'<label>pipeline <select name="pipeline">{options(pipelines, pipeline)}</select></label> '
        f'<label>status <select name="status">{options(statuses, chosen)}</select></label> '
        '<button type="submit">filter</button></form>'
    )
    rows = [
        [
            f'<a href="{url("runs", run.id)}">{esc(run.id)}</a>',
            esc(run.pipeline),
            status(run.status),
            esc(when(run.started_at)),
            esc(seconds(run.duration if run.duration is not None else run.elapsed)),
        ]
        for run in runs
    ]
    listing = table(["run", "pipeline", "status", "started", "time"], rows, "runs")
    empty = '<p class="muted">no runs match</p>' if not runs else ""
    return layout("runs", form + listing + empty)


def run_page(run: Any, picture: str, note: str) -> str:
    """A run: its parameters, its DAG coloured by status, its step table."""
    params = table(
        ["parameter", "value"],
        [[esc(name), f"<code>{esc(_json(value))}</code>"] for name, value in run.params.items()],
        "params",
    )
    rows = []
    for step in run.steps:
        link = url("runs", run.id, "steps", step.label)
        rows.append([
            f'<a href="{link}">{esc(step.label)}</a>',
            status(step.status),
            esc(seconds(step.duration)),
            esc(step.attempts or ""),
            esc(step.why),
        ])
    steps = table(["step", "status", "time", "tries", "why"], rows, "steps")
    took = seconds(run.duration if run.duration is not None else run.elapsed)
    summary = (
        f'<p>pipeline <b>{esc(run.pipeline)}</b> {status(run.status)} '
        f'started {esc(when(run.started_at))}, {esc(took)}</p>'
    )
    graph = f'<div class="graph" id="graph">{picture}</div>'
    if note:
        graph += f'<p class="muted">{esc(note)}</p>'
    return layout(f"run {run.id}", summary + params + graph + steps,
                  refresh=run.status == "running")


def step_page(
    run: Any, step: Any, outputs: Sequence[str], readers: str,
    writers: dict[str, tuple[str, str]],
) -> str:
    """A step instance: its state, its inputs (with the run and step that wrote each: `writers`
    maps a location to them), its outputs (previews already rendered), who read them, its log."""
    facts = table(["", ""], [
        ["status", status(step.status)],
        ["time", esc(seconds(step.duration))],
        ["tries", esc(step.attempts or "")],
        ["why", esc(step.why)],
        ["cached from", _run_link(step.cached_from) if step.cached_from else ""],
        ["inputs", "<br>".join(
            f"{esc(name)}: <code>{esc(uri)}</code>{_written_by(writers.get(uri))}"
            for name, uris in step.inputs.items() for uri in uris
        )],
    ], "facts")
    log = step.log()
    if log:
        shown = f'<pre id="log">{esc(log)}</pre>'
    elif step.cached_from:
        other = url("runs", step.cached_from, "steps", step.label)
        shown = f'<p id="log" class="muted">cached: its log is in <a href="{other}">run ' \
                f'{esc(step.cached_from)}</a></p>'
    else:
        shown = '<p id="log" class="muted">no log (it did not run in this run)</p>'
    back = f'<p>run <a href="{url("runs", run.id)}">{esc(run.id)}</a> ({esc(run.pipeline)})</p>'
    body = back + facts + "<h2>outputs</h2>" + ("".join(outputs) or "<p>none</p>")
    body += readers + "<h2>log</h2>" + shown
    return layout(f"{step.label} in {run.id}", body, refresh=run.status == "running")


def _written_by(writer: tuple[str, str] | None) -> str:
    if writer is None:
        return ""
    run_id, label = writer
    link = url("runs", run_id, "steps", label)
    return f' from <a class="writer" href="{link}">{esc(label)}</a> of {_run_link(run_id)}'


def _run_link(run_id: str) -> str:
    return f'<a href="{url("runs", run_id)}">{esc(run_id)}</a>'


def readers_of(uses: Sequence[tuple[str, str, str, str]]) -> str:
    """Lineage: (output, run id, step label, input name) of each step that read an output."""
    if not uses:
        return ""
    rows = [
        [esc(out), _run_link(run_id),
         f'<a href="{url("runs", run_id, "steps", label)}">{esc(label)}</a>', esc(name)]
        for out, run_id, label, name in uses
    ]
    return "<h2>read by</h2>" + table(["output", "run", "step", "as input"], rows, "readers")


def not_found(message: str) -> str:
    return layout("not found", f"<p>{esc(message)}</p>")


def _json(value: Any) -> str:
    import json

    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)
