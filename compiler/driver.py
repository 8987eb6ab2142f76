"""The driver: REF -> IR -> passes -> backend -> files. The only front-end module that imports
backends (besides the CLI).

`compile_pipeline` runs the phases of `pipec.passes` for one target: validate, the target's
capability check and own checks, optimize, the target's lowerings, canonical order. Errors stop at
the end of the phase that found them; warnings travel with the result.
"""

from __future__ import annotations

import difflib
import json
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipec import backends, loader
from pipec.backends.base import Backend, Bundle, unsupported
from pipec.backends.lowerings.drop import cannot_drop, drop_options, drop_unsupported
from pipec.backends.lowerings.fuse import fuse
from pipec.backends.lowerings.limits import check_bundle, split_loops
from pipec.backends.settings import ContainerSettings, SettingsError, load_settings
from pipec.ir.diagnostics import Diagnostic, DiagnosticError, errors
from pipec.ir.model import Pipeline
from pipec.ir.passes import Pass, Rewrite
from pipec.passes import CANONICAL, OPTIMIZE, VALIDATE, PassContext, run
from pipec.passes.targets import for_target


@dataclass
class Compiled:
    """A pipeline ready for one target's `emit` or `run`: lowered IR, the configured backend, the
    warnings found on the way, the rewrites made (`pipec explain`) and the validated pipeline
    they started from."""

    pipeline: Pipeline
    backend: Backend[Any]
    warnings: list[Diagnostic] = field(default_factory=list)
    rewrites: list[Rewrite] = field(default_factory=list)
    validated: Pipeline | None = None

    def emit(self) -> Bundle:
        """The target's files; DiagnosticError when one is larger than the engine holds."""
        try:
            bundle = self.backend.emit(self.pipeline)
        except DiagnosticError as exc:  # a shape the emitter has no form for: never droppable
            if self.backend.settings.unsupported != "warn":
                raise
            raise DiagnosticError([cannot_drop(d) for d in exc.diagnostics]) from None
        limit = self.backend.limits.spec_bytes
        too_big = check_bundle(bundle, limit, self.backend.name, self.pipeline.location)
        if too_big:
            raise DiagnosticError(too_big)
        return bundle


def target_lowerings(backend: Backend[Any], optimize: bool = True) -> tuple[Pass, ...]:
    """What runs after `OPTIMIZE` for `backend`: fusion (when optimizing and the target fuses),
    the target's own lowerings, and splitting what exceeds the target's limits."""
    fusing: tuple[Pass, ...] = (fuse,) if optimize and backend.fuses else ()
    return (*fusing, *backend.lowerings, split_loops(backend.limits.loop_items, backend.name))


def optimized(pipeline: Pipeline) -> tuple[Pipeline, list[Rewrite]]:
    """A validated pipeline through the target-neutral `OPTIMIZE` rules, in canonical order
    (`pipec ir --optimized` without a target)."""
    ctx = PassContext()
    result = run(CANONICAL, run(OPTIMIZE, pipeline, ctx), ctx)
    if ctx.failed:
        raise DiagnosticError(errors(ctx.diagnostics))
    return result, ctx.rewrites


def check(pipeline: Pipeline, target: str | None = None) -> tuple[Pipeline, list[Diagnostic]]:
    """Validate (and check the target's capabilities when a target is named); canonical order."""
    ctx = PassContext(target=target)
    if target is not None:
        pipeline = for_target(pipeline, target)
    checked = run(VALIDATE, pipeline, ctx)
    if target is not None and not ctx.failed:
        ctx.diagnostics.extend(unsupported(checked, backends.load(target)))
    if not ctx.failed:
        checked = run(CANONICAL, checked, ctx)
    return checked, ctx.diagnostics


def load_checked(ref: str, target: str | None = None) -> tuple[Pipeline, Path]:
    """Load REF and validate it; raise DiagnosticError on any error."""
    pipeline, front, root = _load(ref)
    checked, found = check(pipeline, target)
    problems = merge(front, errors(found))
    if problems:
        raise DiagnosticError(problems)
    return checked, root


def _load(ref: str) -> tuple[Pipeline, list[Diagnostic], Path]:
    """The traced pipeline, the front end's errors (reported together with the passes' ones),
    and the project root."""
    pipeline, diagnostics, root = loader.load(ref)
    if pipeline is None:
        raise DiagnosticError(errors(diagnostics) or diagnostics)
    return pipeline, errors(diagnostics), root


def compile_pipeline(
    pipeline: Pipeline,
    backend: Backend[Any],
    optimize: bool = True,
    front: Sequence[Diagnostic] = (),
) -> Compiled:
    """Run every phase for `backend` (see the module docstring); raise DiagnosticError with
    the front end's errors (`front`) and those of the first phase that failed."""
    ctx = PassContext(target=backend.name)
    stages: tuple[Callable[[Pipeline], Pipeline], ...] = (
        lambda p: run(VALIDATE, for_target(p, backend.name), ctx),
        lambda p: _target_checks(p, backend, ctx),
        lambda p: run(OPTIMIZE, p, ctx) if optimize else p,
        lambda p: run(target_lowerings(backend, optimize), p, ctx),
        lambda p: run(CANONICAL, p, ctx),
    )
    validated: Pipeline | None = None
    for stage in stages:
        pipeline = stage(pipeline)
        if ctx.failed or front:
            raise DiagnosticError(merge(list(front), errors(ctx.diagnostics)))
        validated = validated or pipeline
    warnings = [d for d in ctx.diagnostics if d.severity == "warning"]
    return Compiled(pipeline, backend, warnings, ctx.rewrites, validated)


def _target_checks(pipeline: Pipeline, backend: Backend[Any], ctx: PassContext) -> Pipeline:
    """The capability check, then the target's own; with `unsupported=warn`, what either
    refuses that can be dropped is dropped, each with a W005 warning (also a rewrite, for
    `pipec explain`), and what cannot says why."""
    if backend.settings.unsupported != "warn":
        ctx.diagnostics.extend(unsupported(pipeline, type(backend)))
        if not ctx.failed:
            ctx.diagnostics.extend(backend.check(pipeline))
        return pipeline
    dropped = drop_unsupported(pipeline, backend.name, backend.capabilities)
    _record_drops(dropped.diagnostics, ctx)
    if ctx.failed:
        return dropped.pipeline
    return _drop_refused_options(dropped.pipeline, backend, ctx)


def _drop_refused_options(pipeline: Pipeline, backend: Backend[Any], ctx: PassContext) -> Pipeline:
    """Run the target's check until it refuses no option it has not dropped yet. The check runs
    again after each drop so that what it reports (its warnings too) is about the pipeline as it
    will be emitted, and so that a refusal a drop brings up is dropped or reported in turn. Each
    round drops at least one (node, option) not dropped before, so this ends."""
    found = backend.check(pipeline)
    done: set[tuple[str, str]] = set()
    while True:
        refusals = [
            d
            for d in errors(found)
            if d.drop is not None and (d.drop.node, d.drop.option) not in done
        ]
        if not refusals:
            break
        dropped = drop_options(pipeline, backend.name, refusals)
        _record_drops(dropped.diagnostics, ctx)
        done |= {(d.drop.node, d.drop.option) for d in refusals if d.drop is not None}
        pipeline = dropped.pipeline
        found = backend.check(pipeline)
    # A refusal of an option already dropped stays as the target said it (its check disagrees
    # with the drop, which the tests of every droppable refusal keep from happening).
    ctx.diagnostics.extend(cannot_drop(d) for d in found)
    return pipeline


def _record_drops(diagnostics: Iterable[Diagnostic], ctx: PassContext) -> None:
    for diagnostic in diagnostics:
        ctx.diagnostics.append(diagnostic)
        if diagnostic.severity == "warning":
            ctx.rewrote("unsupported=warn", (), diagnostic.message, diagnostic.location)


def merge(front: list[Diagnostic], passes: list[Diagnostic]) -> list[Diagnostic]:
    """Front-end diagnostics plus the pass diagnostics about other places.

    When the tracer could not bind an argument it reported why; the passes then see the input as
    missing, which is the same problem told twice, so a pass diagnostic at a line the front end
    already reported on is dropped.
    """
    reported = {(d.location.file, d.location.line) for d in front if d.location}
    rest = [
        d for d in passes if not d.location or (d.location.file, d.location.line) not in reported
    ]
    return front + rest


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """`key=value` pairs; a value that parses as JSON is taken as JSON, else as a string."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"expected --set key=value, got {pair!r}")
        try:
            result[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            result[key.strip()] = value
        except (ValueError, RecursionError) as exc:  # 5,000 digits; JSON nested thousands deep
            raise SettingsError(f"--set {key.strip()}: the value cannot be read: {exc}") from None
    return result


def configure(
    target: str, root: Path, overrides: Mapping[str, Any] | Sequence[str] = ()
) -> Backend[Any]:
    """The target's backend, configured from `[tool.pipec.targets.<target>]` then `--set`."""
    backend_cls = backends.load(target)
    raw = dict(project_settings(root, target))
    raw.update(overrides if isinstance(overrides, Mapping) else parse_overrides(overrides))
    settings = load_settings(backend_cls.settings_model, target, raw)
    return backend_cls(settings, root)


def project_settings(root: Path, target: str) -> Mapping[str, Any]:
    """`[tool.pipec.targets.<target>]` of the project's pyproject.toml (empty when absent);
    a file that is not TOML, tables of the wrong shape, or a section naming no known target
    (`[tool.pipec.targets.kubflow]`, which would otherwise be ignored) are a SettingsError
    naming the file and line."""
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    try:
        text = pyproject.read_bytes().decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{pyproject} is not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{pyproject} is not valid TOML: {exc}") from None
    section: Any = data
    path = ("tool", "pipec", "targets", target)
    for depth, key in enumerate(path, 1):
        section = section.get(key, {})
        if not isinstance(section, dict):
            raise SettingsError(
                f"{pyproject}: [{'.'.join(path[:depth])}] must be a table, not "
                f"{type(section).__name__} {section!r}"
            )
        if depth == 2:
            _check_known(pyproject, text, "tool.pipec", section, ["targets"])
        elif depth == 3:
            _check_known(pyproject, text, "tool.pipec.targets", section, backends.available())
    found: dict[str, Any] = section
    return found


def _check_known(
    pyproject: Path, text: str, table: str, section: Mapping[str, Any], known: Iterable[str]
) -> None:
    """A key of `table` that pipec does not know is an error (a misspelled target's section
    would otherwise be silently ignored), naming the line it is on and the closest known key."""
    names = sorted(known)
    for key in sorted(section):
        if key in names:
            continue
        near = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
        hint = f"did you mean {near[0]!r}? " if near else ""
        # tomllib gives no positions; the section's header (or dotted key) is found by its text.
        spelled = f"{table}.{key}"
        line = next(
            (n for n, written in enumerate(text.splitlines(), 1) if spelled in written), None
        )
        where = f"{pyproject}:{line}" if line else str(pyproject)
        raise SettingsError(f"{where}: [{table}] has no {key!r}; {hint}known: {', '.join(names)}")


def prepare(
    ref: str,
    target: str,
    overrides: Sequence[str] = (),
    optimize: bool = True,
    images: bool = True,
) -> Compiled:
    """REF -> a pipeline compiled for `target` (see `compile_pipeline`). With `images` (compile
    and run; not the commands that only show the IR), a container target whose step image
    `pipec build` makes gets the image `pipec.lock` records for it (an error when the image is
    missing or stale; `pipec.backends.images.pipeline`)."""
    backends.load(target)  # an unknown target fails before any import of user code
    pipeline, front, root = _load(ref)
    backend = configure(target, root, overrides)
    # Only a container target can have a built image (`images.pipeline.builds`): the image
    # machinery is not imported by every `pipec run` on the local target.
    if images and not front and isinstance(backend.settings, ContainerSettings):
        from pipec.backends.images.pipeline import with_locked_image

        backend = with_locked_image(backend, pipeline, ref)
    return compile_pipeline(pipeline, backend, optimize, front)


def prepare_build(
    ref: str, target: str, overrides: Sequence[str] = ()
) -> tuple[Pipeline, Backend[Any]]:
    """REF checked for `target` (every phase, as compile runs them) and the configured backend,
    for `pipec build`: the traced pipeline, whose steps' modules are the image's code."""
    backends.load(target)
    pipeline, front, root = _load(ref)
    backend = configure(target, root, overrides)
    compile_pipeline(pipeline, backend, True, front)
    return pipeline, backend


def compile_ref(ref: str, target: str, overrides: Sequence[str] = ()) -> Bundle:
    """REF -> the target's files (in memory)."""
    return prepare(ref, target, overrides).emit()


def run_function(
    fn: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], as_script: bool = False
) -> Any:
    """`my_pipeline()` called outside a trace: compile it and run it on the local target.

    Called from the top level of a script (`python file.py`), it behaves like `pipec run
    file.py`: the run's summary, the failing step's log, the resume hint, and the process exits
    with the run's exit code (2 for an invalid pipeline). Called from other code (a notebook, a
    test), it returns the run's result or raises."""
    import inspect

    from pipec.backends.base import RunOptions
    from pipec.tracing import trace_pipeline

    root = loader.project_root(Path(inspect.getsourcefile(fn.func) or ".").parent)
    try:
        pipeline, diagnostics = trace_pipeline(fn, root)
        if pipeline is None or errors(diagnostics):
            raise DiagnosticError(errors(diagnostics) or diagnostics)
        compiled = compile_pipeline(pipeline, configure("local", root))
        params = dict(inspect.signature(fn.func).bind_partial(*args, **kwargs).arguments)
        outcome = compiled.backend.run(compiled.pipeline, params, RunOptions(view="auto"))
    except (DiagnosticError, SettingsError) as exc:
        if not as_script:
            raise
        import sys

        shown = [d.render() for d in exc.diagnostics] if isinstance(exc, DiagnosticError) else []
        print("\n".join(shown) or f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    result = outcome.result
    assert result is not None
    if as_script:
        from rich.console import Console

        from pipec.cli_run import print_summary

        print_summary(result, Console(stderr=True, highlight=False))
        raise SystemExit(result.exit_code)
    if not result.ok:
        failed = [s.label for s in result.steps if s.status == "failed"]
        raise PipelineRunFailed(
            f"run {result.run_id} of {fn.name!r} {result.status}"
            + (f": failed step(s) {', '.join(failed)}" if failed else "")
            + f" (see `pipec runs show {result.run_id}`)"
        )
    return result


class PipelineRunFailed(RuntimeError):
    """A pipeline called directly (`my_pipeline()`) ran and did not succeed."""
