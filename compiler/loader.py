"""Turn a REF (a Python file, a module, or an IR file) into IR, or into diagnostics.

REF forms: `path/to/file.py[:name]`, `package.module:name`, `pipeline.json`, `pipeline.pir`.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path
from types import ModuleType

from pipec.dsl import PipelineFunction
from pipec.errors import PipecUsageError, is_pipec_file, relative_file
from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import Location, Pipeline
from pipec.tracing import trace_pipeline


def project_root(start: Path) -> Path:
    """The nearest folder at or above `start` holding a pyproject.toml; else `start` itself."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return start


def load(ref: str) -> tuple[Pipeline | None, list[Diagnostic], Path]:
    """Load REF. Returns (pipeline or None, diagnostics, project root)."""
    path_part, _, name = ref.partition(":") if not _is_windows_drive(ref) else (ref, "", "")
    path = Path(path_part)
    if path.suffix in (".json", ".pir"):
        pipeline, diagnostics, root = _load_ir(path)
        if pipeline is not None:
            diagnostics += _stale_code(pipeline, path, root)
        return pipeline, diagnostics, root
    if path.suffix == ".py":
        if not path.is_file():
            return None, [_ref_error(f"no such file: {path_part}", "check the path")], Path.cwd()
        root = project_root(path.parent)
        module = _import_file(path.resolve(), root)
    else:
        root = project_root(Path.cwd())
        module = _import_module(path_part, root)
    if isinstance(module, Diagnostic):
        return None, [module], root
    found = _find_pipeline(module, name, ref)
    if isinstance(found, Diagnostic):
        return None, [found], root
    pipeline, diagnostics = trace_pipeline(found, root)
    return pipeline, diagnostics, root


def _is_windows_drive(ref: str) -> bool:
    return len(ref) > 2 and ref[1] == ":" and ref[2] in "\\/"


def _load_ir(path: Path) -> tuple[Pipeline | None, list[Diagnostic], Path]:
    from pydantic import ValidationError

    root = project_root(path.parent if path.parent.exists() else Path.cwd())
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [_ref_error(f"cannot read {path}: {exc.strerror}", "check the path")], root
    except UnicodeDecodeError as exc:
        problem = Diagnostic(
            code="F020",
            message=f"{path} is not valid pipec IR: not UTF-8 text (byte {exc.start})",
            hint="regenerate it with `pipec ir REF`",
            location=Location(file=path.as_posix(), line=1),
        )
        return None, [problem], root
    try:
        if path.suffix == ".json":
            from pipec.ir.serde import from_json

            return from_json(text), [], root
        from pipec.ir.text import from_text

        return from_text(text), [], root
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return (
            None,
            [
                Diagnostic(
                    code="F020",
                    message=f"{path} is not valid pipec IR: {where}: {first['msg']} "
                    f"({exc.error_count()} problem(s))",
                    hint="regenerate it with `pipec ir REF --format json`",
                    location=Location(file=path.as_posix(), line=1),
                )
            ],
            root,
        )
    except ValueError as exc:
        line = getattr(exc, "line", 1) or 1
        return (
            None,
            [
                Diagnostic(
                    code="F020",
                    message=f"{path} is not valid pipec IR: {exc}",
                    hint="regenerate it with `pipec ir REF`",
                    location=Location(file=path.as_posix(), line=int(line)),
                )
            ],
            root,
        )


def _stale_code(pipeline: Pipeline, path: Path, root: Path) -> list[Diagnostic]:
    """An IR file records each component's code hash. Caches key on it, so the code that will
    actually run must still be that code: an edit since the file was written is an error (a run
    would serve old results and store new ones under the old key). Components whose module
    cannot be imported here are left alone (the runtime will say so where they run)."""
    from pipec.ir.code import recompute

    found: list[Diagnostic] = []
    for component in pipeline.components:
        now = recompute(component.module, component.function, str(root))
        if now is None or now.digest == component.code_hash:
            continue
        found.append(
            Diagnostic(
                code="F021",
                message=f"the code of {component.module}:{component.function} changed since "
                f"{path.name} was written (its code hash is now {now.digest[:19]}..., the file "
                f"records {component.code_hash[:19]}...)",
                hint="regenerate the IR file (`pipec ir REF --format json`) or use the .py file",
                location=Location(file=path.as_posix(), line=1),
            )
        )
    return found


def _import_file(path: Path, root: Path) -> ModuleType | Diagnostic:
    """Import a file under its dotted name relative to the project root (so steps can be
    imported by the same name inside containers and workers)."""
    try:
        rel = path.relative_to(root)
        dotted = ".".join(rel.with_suffix("").parts)
        search = root
    except ValueError:
        dotted, search = path.stem, path.parent
    if str(search) not in sys.path:
        sys.path.insert(0, str(search))
    return _import_module(dotted, root, path)


def _import_module(dotted: str, root: Path, path: Path | None = None) -> ModuleType | Diagnostic:
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    cached = sys.modules.get(dotted)
    if path is not None and cached is not None and getattr(cached, "__file__", None) != str(path):
        # Another file was imported under the same name earlier in this process: load this one.
        del sys.modules[dotted]
    try:
        return importlib.import_module(dotted)
    except PipecUsageError as exc:
        return Diagnostic(code=exc.code, message=exc.message, hint=exc.hint, location=exc.location)
    except ModuleNotFoundError as exc:
        if exc.name and dotted.startswith(exc.name):
            return _ref_error(
                f"no module named {dotted!r}",
                "pass a file path (path/to/file.py) or a module importable from the project root",
            )
        return _import_failed(dotted, exc, root)
    except SystemExit as exc:  # sys.exit()/exit() at import: never a silent exit 0
        failed = _import_failed(dotted, exc, root)
        return failed.model_copy(
            update={
                "message": f"importing {dotted!r} exited (SystemExit: {exc.code!r}) instead of "
                "defining the pipeline",
                "hint": 'move the code that exits under `if __name__ == "__main__":`',
            }
        )
    except Exception as exc:
        return _import_failed(dotted, exc, root)


def _import_failed(dotted: str, exc: BaseException, root: Path) -> Diagnostic:
    """An exception while importing user code, pointed at the innermost user frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    location = None
    for frame in frames:
        name = frame.filename
        if "importlib" not in name and not name.startswith("<") and not is_pipec_file(name):
            location = Location(file=relative_file(frame.filename, root), line=frame.lineno or 1)
    if isinstance(exc, SyntaxError) and exc.filename:
        location = Location(file=relative_file(exc.filename, root), line=exc.lineno or 1)
    return Diagnostic(
        code="F001",
        message=f"importing {dotted!r} failed: {type(exc).__name__}: {exc}",
        hint="fix the error at this line (run with --debug for the full traceback)",
        location=location,
    )


def _find_pipeline(module: ModuleType, name: str, ref: str) -> PipelineFunction | Diagnostic:
    found = {
        attr: value
        for attr, value in vars(module).items()
        if isinstance(value, PipelineFunction)
        and getattr(value.func, "__module__", None) == module.__name__
    }
    if not found:
        found = {a: v for a, v in vars(module).items() if isinstance(v, PipelineFunction)}
    if name:
        value = getattr(module, name, None)
        if isinstance(value, PipelineFunction):
            return value
        return _ref_error(
            f"{ref}: {module.__name__} has no @pipeline named {name!r}",
            f"pipelines there: {', '.join(sorted(found)) or '(none)'}",
        )
    if len(found) > 1:
        # Sub-pipelines are called by name from another pipeline's body: the pipeline nobody
        # calls is the one the file is about.
        called = {n for p in found.values() for n in p.func.__code__.co_names}
        roots = {a: v for a, v in found.items() if a not in called}
        found = roots or found
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        return _ref_error(
            f"{ref} defines no @pipeline function", "decorate the pipeline function with @pipeline"
        )
    return _ref_error(
        f"{ref} defines several pipelines: {', '.join(sorted(found))}",
        f"name one: {ref.split(':')[0]}:{sorted(found)[0]}",
    )


def _ref_error(message: str, hint: str) -> Diagnostic:
    return Diagnostic(code="F015", message=message, hint=hint)
