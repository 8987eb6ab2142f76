"""The `pipec` command line: ir, validate, compile, targets, schema (and run, runs, logs).

Exit codes: 0 ok, 1 the pipeline ran and failed, 2 the input is invalid (diagnostics on stderr,
never a traceback unless --debug), 3 pipec itself failed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pipec import backends
from pipec.ir.diagnostics import Diagnostic, DiagnosticError, InvalidInput

F = TypeVar("F", bound=Callable[..., Any])

EXIT_INVALID = 2
EXIT_INTERNAL = 3


def fail(message: str, code: int = EXIT_INVALID) -> None:
    """Print an error on stderr and exit."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def show_warnings(warnings: list[Diagnostic]) -> None:
    """Warnings on stderr; they never stop a command."""
    for warning in warnings:
        click.echo(warning.render(), err=True)


def report_errors(invoke: Callable[[], Any], debug: bool) -> Any:
    """Run a command; turn pipec's expected errors into one clear message and exit code 2, and
    anything else into an internal error (exit 3) without a traceback unless --debug. Every
    command goes through here (`_Commands.invoke`), so no command can forget to."""
    try:
        return invoke()
    except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
        raise
    except DiagnosticError as exc:
        for diagnostic in exc.diagnostics:
            click.echo(diagnostic.render(), err=True)
        n = len(exc.diagnostics)
        click.echo(f"{n} error{'s' if n != 1 else ''}; nothing was written", err=True)
        sys.exit(EXIT_INVALID)
    except InvalidInput as exc:
        fail(str(exc))
    except RecursionError:
        # Only input can nest this deep (a JSON value in --param or --set, an IR file).
        fail("input nested too deeply (a JSON value or IR file of thousands of levels)")
    except Exception as exc:
        if debug:
            raise
        fail(
            f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            EXIT_INTERNAL,
        )


class _Commands(click.Group):
    """The `pipec` group. `run`, `runs` and `logs` live in `pipec.cli_run`, which pulls in the
    local runner, SQLite and rich; it is imported only when one of them is used, so `validate`
    and `compile` start faster."""

    lazy = ("logs", "run", "runs")

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug"))
        return report_errors(lambda: super(_Commands, self).invoke(ctx), debug)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            from pipec import cli_run

            command = getattr(cli_run, cmd_name)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks instead of short errors.")
@click.version_option(package_name="pipec")
def main(debug: bool) -> None:
    """pipec compiles Python pipelines for the targets `pipec targets` lists (today: local,
    Kubeflow Pipelines, Vertex AI Pipelines, Airflow 3).

    REF is path/to/file.py[:pipeline], package.module:pipeline, or an IR file (.json or .pir).
    """


@main.command("ir")
@click.argument("ref")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="The text form (.pir) for people, or canonical JSON.",
)
@click.option("--no-check", is_flag=True, help="Print the traced IR without running the passes.")
def ir_command(ref: str, fmt: str, no_check: bool) -> None:
    """Print the IR of a pipeline."""
    from pipec import driver, loader
    from pipec.ir.diagnostics import errors

    if no_check:
        pipeline, diagnostics, _ = loader.load(ref)
        if pipeline is None or errors(diagnostics):
            raise DiagnosticError(errors(diagnostics) or diagnostics)
    else:
        pipeline, _ = driver.load_checked(ref)
    if fmt == "json":
        from pipec.ir.serde import to_json

        click.echo(to_json(pipeline), nl=False)
    else:
        from pipec.ir.text import to_text

        click.echo(to_text(pipeline), nl=False)


@main.command()
@click.argument("ref")
@click.option("--target", "-t", help="Also check that this target can express the pipeline.")
def validate(ref: str, target: str | None) -> None:
    """Check a pipeline; exit 2 with one diagnostic per problem."""
    from pipec import driver
    from pipec.ir import graph

    if target is not None:
        backends.load(target)
    pipeline, _ = driver.load_checked(ref, target)
    n = len(graph.steps(pipeline))
    suffix = f" for target {target!r}" if target else ""
    click.echo(f"ok: pipeline {pipeline.name!r} is valid{suffix} ({n} step{'s' if n != 1 else ''})")


@main.command("compile")
@click.argument("ref")
@click.option(
    "--target", "-t", required=True, help="The target to compile for (see `pipec targets`)."
)
@click.option(
    "--output",
    "-o",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the files to (default: out/<pipeline>/<target>).",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a target setting from [tool.pipec.targets.<target>].",
)
def compile_command(ref: str, target: str, out: Path | None, settings: tuple[str, ...]) -> None:
    """Compile a pipeline into the target's native files."""
    from pipec import driver
    from pipec.backends.files import write_output

    compiled = driver.prepare(ref, target, settings)
    show_warnings(compiled.warnings)
    bundle = compiled.emit()
    folder = out or Path("out") / compiled.pipeline.id / target
    written, removed = write_output(bundle, folder)
    for path in written:
        click.echo(str(path))
    for path in removed:
        click.echo(f"removed {path} (no longer part of the output)", err=True)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def targets(as_json: bool) -> None:
    """List the targets and what each can express."""
    from pipec.backends.base import FEATURES

    rows = []
    for name in backends.available():
        backend = backends.load(name)
        rows.append((name, backend))
    if as_json:
        data = {
            name: {
                "description": b.description,
                "extra": b.extra,
                "features": {f: f in b.capabilities.supported for f in FEATURES},
                "notes": dict(sorted(b.notes.items())),
                "settings": sorted(b.settings_model.model_fields),
            }
            for name, b in rows
        }
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    summary = Table(title="targets", show_lines=False)
    for column in ("target", "description", "install", "settings"):
        summary.add_column(column)
    for name, b in rows:
        # Escaped: rich would read `[extra]` as a style tag and drop it.
        extra = escape(f"pip install 'pipec[{b.extra}]'") if b.extra else "(base install)"
        summary.add_row(
            name, b.description, extra, ", ".join(sorted(b.settings_model.model_fields))
        )
    console.print(summary)
    features = Table(title="capabilities (yes = native support)")
    features.add_column("feature")
    for name, _ in rows:
        features.add_column(name, justify="center")
    notes: list[str] = []
    for feature, label in FEATURES.items():
        cells = []
        for name, b in rows:
            if feature not in b.capabilities.supported:
                cells.append("-")
            elif feature in b.notes:
                notes.append(f"({len(notes) + 1}) {name}, {label}: {b.notes[feature]}")
                cells.append(f"partial ({len(notes)})")
            else:
                cells.append("yes")
        features.add_row(label, *cells)
    console.print(features)
    for note in notes:
        console.print(note, markup=False)


@main.command()
def schema() -> None:
    """Print the JSON Schema of the IR."""
    from pipec.ir.serde import json_schema

    click.echo(json.dumps(json_schema(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
