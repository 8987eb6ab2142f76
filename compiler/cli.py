"""The `pipec` command line: ir, validate, compile, graph, targets, schema (run, runs, build,
...: lazy).

Exit codes: 0 ok, 1 the pipeline ran and failed, 2 the input is invalid (diagnostics on stderr,
never a traceback unless --debug), 3 pipec itself failed.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

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
    """The `pipec` group. `run`, `logs` (`pipec.cli_run`), `runs`, `artifacts`
    (`pipec.cli_runs`), `build` (`pipec.cli_build`) and `ui` (`pipec.ui`) pull in the local
    runner, SQLite, rich, Docker or a web server; a module is imported only when one of its
    commands is used, so `validate` and `compile` start faster."""

    lazy: ClassVar[dict[str, str]] = {
        "logs": "cli_run", "run": "cli_run", "runs": "cli_runs", "artifacts": "cli_runs",
        "ui": "ui", "build": "cli_build",
    }

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug"))
        return report_errors(lambda: super(_Commands, self).invoke(ctx), debug)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module = importlib.import_module(f"pipec.{self.lazy[cmd_name]}")
            command = getattr(module, cmd_name)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks instead of short errors.")
@click.version_option(package_name="pipec")
def main(debug: bool) -> None:
    """pipec compiles Python pipelines for the targets `pipec targets` lists (local, Kubeflow
    Pipelines, Vertex AI Pipelines, Airflow 3, GitHub Actions, and more).

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
@click.option(
    "--optimized",
    is_flag=True,
    help="Print the IR after the optimizer (and, with --target, the target's fusion and "
    "lowerings).",
)
@click.option(
    "--target",
    "-t",
    help="The IR as this target sees it: its per-target step options in place, its capabilities "
    "checked; with --optimized also its fusion and lowerings.",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="With --target: override a target setting (e.g. fuse=true).",
)
def ir_command(
    ref: str,
    fmt: str,
    no_check: bool,
    optimized: bool,
    target: str | None,
    settings: tuple[str, ...],
) -> None:
    """Print the IR of a pipeline."""
    from pipec import driver, loader
    from pipec.ir.diagnostics import errors

    if settings and not (target and optimized):
        raise click.UsageError("--set goes with --target and --optimized")
    if no_check and (optimized or target):
        raise click.UsageError("--no-check excludes --optimized and --target")
    if no_check:
        pipeline, diagnostics, _ = loader.load(ref)
        if pipeline is None or errors(diagnostics):
            raise DiagnosticError(errors(diagnostics) or diagnostics)
    elif target is not None and optimized:
        compiled = driver.prepare(ref, target, settings, images=False)
        show_warnings(compiled.warnings)
        pipeline = compiled.pipeline
    elif target is not None:
        pipeline, _ = driver.load_checked(ref, target)
    elif optimized:
        pipeline, _ = driver.optimized(driver.load_checked(ref)[0])
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


@main.command()
@click.argument("ref")
@click.option(
    "--target",
    "-t",
    help="Also apply the target's fusion and lowerings (without: the target-neutral rules).",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="With --target: override a target setting (e.g. fuse=true).",
)
def explain(ref: str, target: str | None, settings: tuple[str, ...]) -> None:
    """Say what the optimizer changes in a pipeline and why, with step and task counts."""
    from pipec import driver
    from pipec.explain import render

    if settings and target is None:
        raise click.UsageError("--set goes with --target")
    if target is None:
        validated, _ = driver.load_checked(ref)
        pipeline, rewrites = driver.optimized(validated)
    else:
        compiled = driver.prepare(ref, target, settings, images=False)
        show_warnings(compiled.warnings)
        assert compiled.validated is not None
        validated, pipeline, rewrites = compiled.validated, compiled.pipeline, compiled.rewrites
    click.echo(render(validated, pipeline, rewrites, target), nl=False)


NO_OPTIMIZE_HELP = "Compile the pipeline as written: no optimizer rules, no fusion."


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
@click.option("--no-optimize", is_flag=True, help=NO_OPTIMIZE_HELP)
def compile_command(
    ref: str, target: str, out: Path | None, settings: tuple[str, ...], no_optimize: bool
) -> None:
    """Compile a pipeline into the target's native files."""
    from pipec import driver
    from pipec.backends.files import write_output

    compiled = driver.prepare(ref, target, settings, optimize=not no_optimize)
    show_warnings(compiled.warnings)
    bundle = compiled.emit()
    folder = out or Path("out") / compiled.pipeline.id / target
    written, removed = write_output(bundle, folder)
    for path in written:
        click.echo(str(path))
    for path in removed:
        click.echo(f"removed {path} (no longer part of the output)", err=True)


@main.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def targets(name: str | None, as_json: bool) -> None:
    """List the targets, what each can express, and what the optimizer does on each; with NAME,
    that target's settings (type, default, description)."""
    import dataclasses

    from pipec.backends.base import FEATURES
    from pipec.backends.settings import describe
    from pipec.passes.optimize import RULE_NAMES

    names = [name] if name is not None else list(backends.available())
    rows = [(n, backends.load(n)) for n in names]  # an unknown NAME is one line, exit 2
    if as_json:
        data = {
            n: {
                "description": b.description,
                "extra": b.extra,
                "features": {f: f in b.capabilities.supported for f in FEATURES},
                "notes": dict(sorted(b.notes.items())),
                "how": dict(sorted(b.how.items())),
                "settings": {
                    info.name: {
                        "type": info.type,
                        "default": info.default,
                        "required": info.required,
                        "description": info.description,
                    }
                    for info in describe(b.settings_model)
                },
                "optimizer": {
                    "rules": list(RULE_NAMES),
                    "fuse_by_default": b.fuse_by_default,
                    "limits": dataclasses.asdict(b.limits),
                },
            }
            for n, b in rows
        }
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if name is not None:
        backend = rows[0][1]
        table = Table(title=f"{name}: {backend.description}", show_lines=True)
        for column in ("setting", "type", "default", "description"):
            table.add_column(column, overflow="fold")
        for info in describe(backend.settings_model):
            default = "(unset)" if info.default is None else json.dumps(info.default)
            table.add_row(info.name, escape(info.type), escape(default), escape(info.description))
        console.print(table)
        console.print(
            f"Set them in [tool.pipec.targets.{name}] of pyproject.toml or with --set key=value.",
            markup=False,
        )
        return
    summary = Table(title="targets", show_lines=False)
    for column in ("target", "description", "install", "settings"):
        summary.add_column(column)
    for n, b in rows:
        # Escaped: rich would read `[extra]` as a style tag and drop it.
        extra = escape(f"pip install 'pipec[{b.extra}]'") if b.extra else "(base install)"
        summary.add_row(n, b.description, extra, ", ".join(sorted(b.settings_model.model_fields)))
    console.print(summary)
    features = Table(title="capabilities (yes = honored, by the engine or pipec's step runtime)")
    features.add_column("feature")
    for n, _ in rows:
        features.add_column(n, justify="center")
    notes: list[str] = []
    for feature, label in FEATURES.items():
        cells = []
        for n, b in rows:
            if feature not in b.capabilities.supported:
                notes.append(f"({len(notes) + 1}) {n}, {label}: {b.notes.get(feature, '')}")
                cells.append(f"- ({len(notes)})")
            elif feature in b.notes:
                notes.append(f"({len(notes) + 1}) {n}, {label}: {b.notes[feature]}")
                cells.append(f"partial ({len(notes)})")
            elif feature in b.how:
                notes.append(f"({len(notes) + 1}) {n}, {label}: {b.how[feature]}")
                cells.append(f"yes ({len(notes)})")
            else:
                cells.append("yes")
        features.add_row(label, *cells)
    console.print(features)
    for note in notes:
        console.print(note, markup=False)
    console.print(
        "A '-' is a compile error (U001); --set unsupported=warn drops such an option (not a "
        "loop, condition or fan-in), and an option a target's own check refuses (a GPU model on "
        "Docker, ...), with a warning naming it (W005).",
        markup=False,
    )
    optimizer = Table(title="optimizer (pipec explain REF --target T shows what it does)")
    for column in ("target", "rules", "fuse (default)", "limits"):
        optimizer.add_column(column)
    for n, b in rows:
        fuse = "on; off with fuse=false" if b.fuse_by_default else "off; on with fuse=true"
        limits = ", ".join(
            f"{key} {value:,}" for key, value in dataclasses.asdict(b.limits).items() if value
        )
        optimizer.add_row(n, ", ".join(RULE_NAMES), fuse, limits or "-")
    console.print(optimizer)
    console.print(
        "Every rule runs by default in compile and run; --no-optimize turns the rules and fusion "
        "off. The fuse setting (--set fuse=true|false, or [tool.pipec.targets.<target>]) "
        "switches fusion either way; splitting to the limits always runs.",
        markup=False,
    )
    console.print("`pipec targets NAME` describes a target's settings.", markup=False)


@main.command("graph")
@click.argument("ref")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot", "svg", "png"]),
    default="mermaid",
    show_default=True,
    help="Mermaid and DOT text need nothing; SVG and PNG need Graphviz (`pipec[graph]` + dot).",
)
@click.option(
    "--output", "-o", "out", type=click.Path(dir_okay=False, path_type=Path),
    help="Write the picture to FILE (default: stdout; PNG needs a file or a pipe).",
)
@click.option("--target", "-t", help="Draw the pipeline as compiled for this target.")
def graph_command(ref: str, fmt: str, out: Path | None, target: str | None) -> None:
    """Draw the pipeline: steps, parameters, artifacts, conditions and loops."""
    from pipec import driver
    from pipec.graph import outline, picture

    if target is not None:
        compiled = driver.prepare(ref, target, optimize=False, images=False)
        show_warnings(compiled.warnings)
        pipeline = compiled.pipeline
    else:
        pipeline, _ = driver.load_checked(ref)
    write_picture(picture(outline.of_pipeline(pipeline), fmt), fmt, out)


def write_picture(data: bytes, fmt: str, out: Path | None) -> None:
    """A picture to FILE (atomically) or stdout; PNG is not written to a terminal."""
    if out is not None:
        import os
        import tempfile

        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, out)  # a viewer watching FILE never sees half a picture
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        click.echo(str(out), err=True)
        return
    if fmt == "png" and sys.stdout.isatty():
        fail("--format png writes binary data: give -o FILE or redirect stdout")
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


@main.command()
def schema() -> None:
    """Print the JSON Schema of the IR."""
    from pipec.ir.serde import json_schema

    click.echo(json.dumps(json_schema(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
