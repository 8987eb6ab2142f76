"""The driver: REF -> IR -> passes -> backend -> files. The only front-end module that imports
backends (besides the CLI)."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipec import backends, loader
from pipec.backends.base import (
    Backend,
    Bundle,
    SettingsError,
    TargetSettings,
    load_settings,
    unsupported,
)
from pipec.backends.files import write_files
from pipec.ir.diagnostics import Diagnostic, DiagnosticError, errors
from pipec.ir.model import Pipeline
from pipec.passes import PassContext, run_passes


def check(pipeline: Pipeline, target: str | None = None) -> tuple[Pipeline, list[Diagnostic]]:
    """Run every pass (and the target's capability check when a target is named)."""
    ctx = PassContext(target=target)
    checked = run_passes(pipeline, ctx)
    if target is not None and not errors(ctx.diagnostics):
        ctx.diagnostics.extend(unsupported(checked, backends.load(target)))
    return checked, ctx.diagnostics


def load_checked(ref: str, target: str | None = None) -> tuple[Pipeline, Path]:
    """Load REF and run the passes; raise DiagnosticError on any error."""
    pipeline, diagnostics, root = loader.load(ref)
    if pipeline is None:
        raise DiagnosticError(diagnostics)
    checked, found = check(pipeline, target)
    problems = merge(errors(diagnostics), errors(found))
    if problems:
        raise DiagnosticError(problems)
    return checked, root


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
    return result


def target_settings(
    target: str, root: Path, overrides: Mapping[str, Any]
) -> tuple[type[Backend], TargetSettings]:
    """The backend class and its settings: `[tool.pipec.targets.<target>]`, then `--set`."""
    backend = backends.load(target)
    raw: dict[str, Any] = {}
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        with pyproject.open("rb") as fh:
            data = tomllib.load(fh)
        raw.update(data.get("tool", {}).get("pipec", {}).get("targets", {}).get(target, {}))
    raw.update(overrides)
    return backend, load_settings(backend.settings_model, target, raw)


def load_and_check(
    ref: str, target: str, settings_overrides: Sequence[str] = ()
) -> tuple[Pipeline, TargetSettings, Backend]:
    """REF -> validated, target-lowered IR with the target's settings and backend instance."""
    backend_cls = backends.load(target)  # unknown target fails before any import of user code
    pipeline, root = load_checked(ref, target)
    backend_cls, settings = target_settings(target, root, parse_overrides(settings_overrides))
    backend = backend_cls(root)
    return backend.lower(pipeline, settings), settings, backend


def compile_ref(ref: str, target: str, settings_overrides: Sequence[str] = ()) -> Bundle:
    """REF -> the target's files (in memory)."""
    pipeline, settings, backend = load_and_check(ref, target, settings_overrides)
    return backend.emit(pipeline, settings)


def write_bundle(bundle: Bundle, out_dir: Path) -> list[Path]:
    """Write every file of a bundle under `out_dir`; each file appears whole or not at all."""
    return write_files(bundle, out_dir)


def run_function(fn: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """`my_pipeline()` called outside a trace: compile it and run it on the local target."""
    import inspect

    from pipec.tracing import trace_pipeline

    root = loader.project_root(Path(inspect.getsourcefile(fn.func) or ".").parent)
    pipeline, diagnostics = trace_pipeline(fn, root)
    if pipeline is None or errors(diagnostics):
        raise DiagnosticError(errors(diagnostics) or diagnostics)
    checked, found = check(pipeline, "local")
    if errors(found):
        raise DiagnosticError(errors(found))
    params = dict(inspect.signature(fn.func).bind_partial(*args, **kwargs).arguments)
    backend_cls, settings = target_settings("local", root, {})
    from pipec.backends.runner import scheduler as local_runner

    result = local_runner.run_pipeline(
        backend_cls(root).lower(checked, settings), settings, params, root=root
    )
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

