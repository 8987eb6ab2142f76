"""The history commands: `pipec runs list|show|lineage|delete|gc|unlock` and `pipec artifacts`.

They read the project's metadata store through `pipec.runs` (the same objects Python users get),
so the CLI, the web view and `pipec.runs.get()` show a run the same way: a run whose runner was
killed is `interrupted`, a resumed run's time is its running time. Deleting goes through
`runner.cleanup`, which never removes what a kept run, a cache entry or a running run needs.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pipec import loader
from pipec import runs as history_api
from pipec.backends.runner import cleanup
from pipec.backends.runner.history import Lineage, lineage, resolve_output
from pipec.backends.runner.results import RunError
from pipec.backends.runner.runs import open_metadata, run_target, unlock_run
from pipec.backends.runner.view import STATUS_STYLE
from pipec.backends.runtime import store
from pipec.cli import write_picture
from pipec.cli_run import print_summary
from pipec.graph import FORMATS
from pipec.ir.diagnostics import InvalidInput

STATUSES = ("running", "succeeded", "failed", "interrupted")
VALUE_CHARS = 60
"""A JSON value longer than this is cut in `runs show`'s outputs table (`--json` has it all)."""


class HistoryError(InvalidInput):
    """A run, step or output that the project's history does not have."""


def _project() -> Path:
    return loader.project_root(Path.cwd())


def _get(run_id: str) -> history_api.Run:
    try:
        return history_api.get(run_id, _project())
    except history_api.RunNotFound as exc:
        raise HistoryError(str(exc)) from None


@click.group("runs")
def runs() -> None:
    """Inspect, trace and clean up recorded runs of this project."""


@runs.command("list")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--pipeline", help="Only runs of this pipeline (its name or id).")
@click.option("--status", type=click.Choice(STATUSES), help="Only runs with this status.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def runs_list(limit: int, pipeline: str | None, status: str | None, as_json: bool) -> None:
    """The most recent runs, newest first."""
    found = list(history_api.find(pipeline, status, limit, _project()))
    if as_json:
        click.echo(json.dumps([_run_row(r) for r in found], sort_keys=True))
        return
    table = Table()
    for column in ("run", "pipeline", "status", "started", "time"):
        # Run ids are copied into `logs` and `--resume`: never wrap or cut them.
        table.add_column(column, no_wrap=column == "run", min_width=22 if column == "run" else None)
    for run in found:
        row = _run_row(run)
        table.add_row(
            run.id,
            run.pipeline,
            Text(run.status, style=STATUS_STYLE.get(run.status, "")),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started_at)),
            "" if row["duration"] is None else f"{row['duration']:.2f}s",
        )
    Console().print(table)


def _run_row(run: history_api.Run) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "pipeline": run.pipeline,
        "status": run.status,
        "started_at": run.started_at,
        "duration": run.duration,
    }


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with every JSON output value).")
@click.option(
    "--graph", "graph", is_flag=True, help="Print the pipeline's picture coloured by status."
)
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="mermaid", show_default=True,
    help="With --graph: the picture's format (svg and png need Graphviz).",
)
@click.option(
    "-o", "--output", "out", type=click.Path(path_type=Path), help="With --graph: write here."
)
def runs_show(run_id: str, as_json: bool, graph: bool, fmt: str, out: Path | None) -> None:
    """One run: its steps, statuses, timings and outputs (or, with --graph, its picture)."""
    run = _get(run_id)
    if graph:
        write_picture(run.picture(fmt), fmt, out)
        return
    if as_json:
        click.echo(json.dumps(run.to_json(), sort_keys=True))
        return
    console = Console(highlight=False)
    print_summary(run.result, console, run_target(run.record))
    _print_outputs(run, console)


def _print_outputs(run: history_api.Run, console: Console) -> None:
    table = Table(title="outputs", title_justify="left")
    for column in ("step", "output", "type", "value or location"):
        table.add_column(column, overflow="fold")
    for step in run.steps:
        for output in step.outputs.values():
            if output.is_value and output.value_json is not None:
                shown = output.value_json
                if len(shown) > VALUE_CHARS:
                    shown = shown[: VALUE_CHARS - 3] + "..."
            else:
                shown = output.uri
            table.add_row(step.label, output.name, output.type, shown)
    if table.row_count:
        console.print(table)
    logged = Table(title="logged by the steps (pipec.context())", title_justify="left")
    for column in ("step", "name", "value"):
        logged.add_column(column, overflow="fold")
    for step in run.steps:
        for name, value in {**step.metrics(), **step.metadata()}.items():
            logged.add_row(step.label, name, json.dumps(value, sort_keys=True))
    if logged.row_count:
        console.print(logged)


@runs.command("lineage")
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def runs_lineage(target: str, as_json: bool) -> None:
    """Where outputs came from and went. TARGET is a run id (every output of the run), an output
    location as `runs show` prints it, or RUN_ID/STEP[/i...]/OUTPUT."""
    metadata = open_metadata(_project())
    run = metadata.get_run(target)
    if run is not None:
        uris = [a.uri for s in metadata.steps_of(target) for a in s.artifacts.values()]
    else:
        try:
            uris = [resolve_output(metadata, target)]
        except RunError as exc:
            raise HistoryError(str(exc)) from None
    found = [lineage(metadata, uri) for uri in dict.fromkeys(uris)]
    if as_json:
        click.echo(json.dumps([_lineage_json(item) for item in found], sort_keys=True))
        return
    for item in found:
        for line in _lineage_lines(item, 0, ""):
            click.echo(line)


def _lineage_lines(item: Lineage, depth: int, arrow: str) -> list[str]:
    pad = "  " * depth
    lines = [f"{pad}{arrow}{item.uri}"]
    if item.produced_by is not None:
        lines.append(f"{pad}    written by {item.produced_by.label} ({item.produced_by.name})")
    for use in item.reused_by:
        lines.append(f"{pad}    reused (cached) by {use.label}")
    for use in item.read_by:
        lines.append(f"{pad}    read by {use.label} as {use.name}")
    for up in item.upstream:
        lines += _lineage_lines(up, depth + 1, "<- ")
    for down in item.downstream:
        lines += _lineage_lines(down, depth + 1, "-> ")
    return lines


def _lineage_json(item: Lineage) -> dict[str, Any]:
    def use(u: Any) -> dict[str, Any]:
        return {"run_id": u.run_id, "step": u.step_id, "iteration": u.iteration, "name": u.name}

    return {
        "uri": item.uri,
        "produced_by": use(item.produced_by) if item.produced_by else None,
        "reused_by": [use(u) for u in item.reused_by],
        "read_by": [use(u) for u in item.read_by],
        "upstream": [_lineage_json(u) for u in item.upstream],
        "downstream": [_lineage_json(d) for d in item.downstream],
    }


@runs.command("delete")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--dry-run", is_flag=True, help="Say what would be freed; delete nothing.")
def runs_delete(run_ids: tuple[str, ...], dry_run: bool) -> None:
    """Delete runs: their records, logs and outputs, except outputs other runs still use."""
    metadata = open_metadata(_project())
    try:
        freed = cleanup.delete_runs(metadata, run_ids, dry_run=dry_run)
    except RunError as exc:
        raise HistoryError(str(exc)) from None
    _say_freed(freed, dry_run)


@runs.command("gc")
@click.option("--keep", type=click.IntRange(min=0), help="Keep the N newest runs of each pipeline.")
@click.option("--older-than", "older", help="Only delete runs started before this age (30d, 12h).")
@click.option("--dry-run", is_flag=True, help="Say what would be freed; delete nothing.")
def runs_gc(keep: int | None, older: str | None, dry_run: bool) -> None:
    """Delete old runs (never a running one, never an output a kept run or cache entry needs)."""
    metadata = open_metadata(_project())
    try:
        age = cleanup.age_seconds(older) if older is not None else None
        chosen = cleanup.select_for_gc(metadata, keep, age, cleanup.now())
        freed = cleanup.delete_runs(metadata, [r.run_id for r in chosen], dry_run=dry_run)
    except RunError as exc:
        raise HistoryError(str(exc)) from None
    _say_freed(freed, dry_run)


def _say_freed(freed: cleanup.Freed, dry_run: bool) -> None:
    verb = "would free" if dry_run else "freed"
    runs_text = f"{len(freed.runs)} run{'s' if len(freed.runs) != 1 else ''}"
    click.echo(f"{'would delete' if dry_run else 'deleted'} {runs_text}: {verb} "
               f"{freed.files} files, {_size(freed.bytes)}")
    for run_id in freed.runs:
        click.echo(f"  {run_id}")
    for uri, users in sorted(freed.kept.items()):
        click.echo(f"kept {uri}: still used by {', '.join(users) or 'a cache entry'}")


def _size(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"


@runs.command("unlock")
@click.argument("run_id")
def runs_unlock(run_id: str) -> None:
    """Release RUN_ID from a process that is gone (one on another host cannot be checked)."""
    try:
        holder = unlock_run(run_id, _project())
    except RunError as exc:
        raise HistoryError(str(exc)) from None
    click.echo(f"run {run_id} released (it was held by pid {holder.pid} on {holder.host})")


@click.command("artifacts")
@click.argument("run_id")
@click.argument("step")
@click.argument("output", required=False)
@click.option("--to", "dest", type=click.Path(path_type=Path), help="Copy the output's files here.")
def artifacts(run_id: str, step: str, output: str | None, dest: Path | None) -> None:
    """List STEP's outputs in RUN_ID, print one OUTPUT's value, or copy its files --to PATH.
    STEP is `step`, or `step[2]` for one loop iteration."""
    run = _get(run_id)
    try:
        found = run.step(step)
    except KeyError as exc:
        raise HistoryError(str(exc.args[0])) from None
    if output is None:
        for out in found.outputs.values():
            click.echo(f"{out.name}\t{out.type}\t{out.uri}")
        return
    if output not in found.outputs:
        have = ", ".join(sorted(found.outputs)) or "none recorded"
        raise HistoryError(f"step {found.label} of run {run_id} has no output {output!r} ({have})")
    chosen = found.outputs[output]
    if not chosen.exists:
        raise HistoryError(f"{chosen.uri} is no longer in the artifact store (deleted by gc?)")
    if dest is None:
        if chosen.is_value:
            click.echo(json.dumps(chosen.load(), sort_keys=True))
        else:
            click.echo(chosen.uri)
        return
    if store.is_remote(chosen.uri):
        raise HistoryError(f"--to copies local outputs; {chosen.uri} is in an object store")
    source = store.local_path(chosen.uri)
    if dest.exists():
        raise HistoryError(f"--to {dest}: it exists; give a new path")
    shutil.copytree(source, dest)
    click.echo(f"copied {chosen.uri} to {dest}", err=True)
    sys.stdout.flush()
