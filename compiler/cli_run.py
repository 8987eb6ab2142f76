"""The run-side commands: `pipec run` and `pipec logs` (`pipec runs ...`: `pipec.cli_runs`).

`run` compiles REF for the target through the driver and hands it to that target's backend: a
target pipec drives itself (local) runs it here, the others submit it to their engine. Exit codes
follow the CLI contract: 0 the run succeeded, 1 it ran and failed, 2 the input is invalid
(diagnostics on stderr, no traceback), 130 interrupted. With `--json`, stdout carries exactly one
JSON document (the run summary) and everything else goes to stderr.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

import click

from pipec import driver, loader
from pipec.backends import UnknownTarget
from pipec.backends.base import NoSubmitter, RunOptions
from pipec.backends.params import ParamError, declared_params, parse_pairs, resolve_params
from pipec.backends.runner.plan import PlanError
from pipec.backends.runner.records import iteration_key
from pipec.backends.runner.results import (
    RunError,
    RunResult,
    StepResult,
    failure_groups,
    log_tail,
    stored_result,
    why_failed,
)
from pipec.backends.runner.runs import open_metadata, resume_command
from pipec.backends.runner.view import STATUS_STYLE
from pipec.backends.settings import SettingsError
from pipec.cli import show_warnings
from pipec.ir.diagnostics import DiagnosticError

if TYPE_CHECKING:
    from rich.console import Console

EXIT_INVALID = 2
SUMMARY_ROWS = 40


def _invalid(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(EXIT_INVALID)


def project_root_of(ref: str | None) -> Path:
    """The project a REF belongs to (the cwd's project when there is no file in REF)."""
    if ref:
        path = Path(ref.partition(":")[0])
        if path.suffix in (".py", ".json", ".pir") and path.exists():
            return loader.project_root(path.resolve().parent)
    return loader.project_root(Path.cwd())


@click.command("run")
@click.argument("ref", required=False)
@click.option("--target", default="local", show_default=True, help="Where to run.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Parameter value.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Target setting.")
@click.option("--parallelism", type=click.IntRange(min=1), help="Steps at once (default: CPUs).")
@click.option("--no-cache", is_flag=True, help="Run every step even when a cached result exists.")
@click.option(
    "--resume",
    "resume_id",
    metavar="RUN_ID",
    help="Continue an unfinished run, with its parameters, settings and options.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout.")
@click.option("--wait", is_flag=True, help="Remote targets: follow the run until it finishes.")
@click.option(
    "--view",
    type=click.Choice(["auto", "live", "plain", "quiet"]),
    default="auto",
    show_default=True,
    help="Progress display on stderr.",
)
@click.option("--no-optimize", is_flag=True, help="Run the pipeline as written (no optimizer).")
def run(
    ref: str | None,
    target: str,
    params: Sequence[str],
    settings: Sequence[str],
    parallelism: int | None,
    no_cache: bool,
    resume_id: str | None,
    as_json: bool,
    wait: bool,
    view: str,
    no_optimize: bool,
) -> None:
    """Run the pipeline REF (or continue run RUN_ID with --resume).

    `--target local` (the default) runs it here; other targets compile it and submit the files
    to their engine (configure the engine with --set or [tool.pipec.targets.<target>]).
    """
    options = RunOptions(
        wait=wait, no_cache=no_cache, parallelism=parallelism, view=view, json=as_json
    )
    try:
        if resume_id:
            if params or settings:
                _invalid("error: --resume continues a run as it was: drop --param/--set")
            backend = driver.configure(target, project_root_of(ref))
            outcome = backend.resume(resume_id, options)
        else:
            if not ref:
                _invalid("error: missing REF (a pipeline file, module:name or IR file)")
            compiled = driver.prepare(ref, target, settings, optimize=not no_optimize)
            show_warnings(compiled.warnings)
            declared = declared_params(compiled.pipeline)
            given = parse_pairs(params, declared)
            # Type errors and missing values stop here, before anything runs or is sent; ints
            # become floats where the type says float.
            resolved = resolve_params(declared, given)
            given = {name: resolved[name] for name in given}
            outcome = compiled.backend.run(compiled.pipeline, given, options)
    except DiagnosticError as exc:
        _invalid("\n".join(d.render() for d in exc.diagnostics))
    except (SettingsError, UnknownTarget, ParamError, RunError, PlanError, NoSubmitter) as exc:
        _invalid(f"error: {exc}")
    result = outcome.result
    if result is not None:
        if view != "quiet" or not as_json:
            show_summary(result, target, sys.stderr if as_json else sys.stdout)
        if as_json:
            click.echo(json.dumps(result.to_json(), sort_keys=True))
    sys.exit(outcome.exit_code)


def _labels(steps: Sequence[StepResult], shown: int = 5) -> str:
    labels = ", ".join(s.label for s in steps[:shown])
    return labels + (", ..." if len(steps) > shown else "")


RICH_ENVIRONMENT = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "NO_COLOR")
"""Variables that change how rich writes a line (colours, width)."""


def show_summary(result: RunResult, target: str, stream: TextIO) -> None:
    """`print_summary` on `stream`. A run that succeeded with no table to show is one line,
    which rich writes as it is where it neither colours nor wraps (not a terminal, no variable
    changing that, a short plain line): that line is written directly, without importing rich
    (about a tenth of a second, as much as ten trivial steps)."""
    line = summary_line(result)
    if (
        result.status == "succeeded"
        and not result.errors
        and not _table_rows(result)
        and not stream.isatty()
        and not any(name in os.environ for name in RICH_ENVIRONMENT)
        and len(line) < 80
        and line.isascii()
        and line.isprintable()
        and line.count(":") == 1  # nothing rich could read as an emoji code
    ):
        stream.write(line + "\n")
        stream.flush()
        return
    from rich.console import Console

    print_summary(result, Console(stderr=stream is sys.stderr, highlight=False), target)


def _table_rows(result: RunResult) -> list[StepResult]:
    """The steps the summary's table shows: all of a small run, else those not succeeded."""
    if len(result.steps) <= SUMMARY_ROWS:
        return result.steps
    return [s for s in result.steps if s.status not in ("succeeded", "cached")][:SUMMARY_ROWS]


def summary_line(result: RunResult) -> str:
    """The summary's line: the run, its status and time, how many steps ended how."""
    counts: dict[str, int] = {}
    for step in result.steps:
        counts[step.status] = counts.get(step.status, 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    took = f" in {result.duration:.2f}s" if result.duration is not None else ""
    return f"run {result.run_id} {result.status}{took}: {tally}"


def print_summary(result: RunResult, console: Console, target: str = "local") -> None:
    """Steps with status, time and why (cached or not); failures with the tail of their log;
    for a run that did not succeed, how to resume it (on `target`, the run's own)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"run {result.run_id} ({result.pipeline})", title_justify="left")
    for column in ("step", "status", "time", "tries", "why"):
        table.add_column(column)
    shown = _table_rows(result)
    for step in shown:
        table.add_row(
            step.label,
            Text(step.status, style=STATUS_STYLE.get(step.status, "")),
            "" if step.duration is None else f"{step.duration:.2f}s",
            str(step.attempts or ""),
            why_failed(step),
        )
    if shown:
        console.print(table)
    console.print(summary_line(result), markup=False)
    for error in result.errors:
        console.print(f"error: {error}", markup=False, style="red")
    # Many iterations failing the same way show one log tail, with how many failed so.
    for group in failure_groups(result.steps):
        first = group.first
        more = len(group.steps) - 1
        others = f" (and {more} more like it: {_labels(group.steps[1:])})" if more else ""
        console.print(
            f"step {first.label} failed: {group.why}{others}", style="bold red", markup=False
        )
        tail = log_tail(first.log_path)
        if tail:
            console.print(f"--- last lines of {first.log_path} ---", markup=False)
            console.print(tail, markup=False, highlight=False)
    if result.status != "succeeded":
        console.print(f"resume with: {resume_command(result.run_id, target)}", markup=False)


@click.command("logs")
@click.argument("run_id")
@click.argument("step")
def logs(run_id: str, step: str) -> None:
    """Print the log of STEP in RUN_ID (`step`, or `step[2]` for one loop iteration)."""
    metadata = open_metadata(loader.project_root(Path.cwd()))
    try:
        result = stored_result(metadata, run_id)
    except RunError as exc:
        _invalid(f"error: {exc}")
    step_id, _, rest = step.partition("[")
    wanted = rest.rstrip("]")
    matches = [
        s
        for s in result.steps
        if s.step_id == step_id and (not wanted or iteration_key(s.iteration) == wanted)
    ]
    if not matches:
        known = sorted({s.step_id for s in result.steps})
        _invalid(f"error: no step {step!r} in run {run_id}; steps: {', '.join(known)}")
    out = sys.stdout.buffer
    for match in matches:
        if len(matches) > 1:
            click.echo(f"=== {match.label} ===")
        if not match.log_path or not Path(match.log_path).is_file():
            click.echo(_no_log(match, step))
            continue
        sys.stdout.flush()
        with open(match.log_path, "rb") as log:  # as written, however big
            shutil.copyfileobj(log, out)
        out.flush()


def _no_log(step: StepResult, asked: str) -> str:
    """Why a step instance has no log in this run (and where to look instead)."""
    if step.status == "cached" and step.cached_from:
        return (
            f"({step.label} was cached from run {step.cached_from}: it did not run in this run; "
            f"its log: pipec logs {step.cached_from} {asked})"
        )
    why = f": {step.reason}" if step.reason else ""
    return f"({step.label} did not run in this run: {step.status}{why})"
