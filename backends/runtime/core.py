"""The step runtime: load a step's inputs, call the user function, write its outputs.

This is what runs inside every step on every engine (see "The step runtime contract" in
docs/DESIGN.md); its command line is `pipec.backends.runtime.invocation`.

`main(argv)` is both the command line and the in-process entry point: the local runner's forked
workers call it directly with the same arguments, so every engine goes through one code path.
Exit codes: 0 success, 1 the user's code raised (traceback printed), 2 the invocation itself is
wrong (bad arguments, an input that does not exist, an output the function did not return), 124
an attempt outlived `--timeout` (`runtime.attempts`, which runs attempts in child processes when
the command asks for a timeout or retries).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, assert_never

from pipec.backends.runtime import (
    context,
    executor_input,
    gcp_secrets,
    materializers,
    returns,
    store,
)
from pipec.backends.runtime.gcp_secrets import SecretError
from pipec.backends.runtime.invocation import (
    CONTEXT_KEYS,
    KFP_EXECUTOR_INPUT,
    OUTPUT_TEXT,
    OUTPUT_VALUE,
    SINGLE_OUTPUT,
    Invocation,
    InvocationError,
    SourceKind,
    parse,
    split_source,
)
from pipec.backends.runtime.returns import OutputTypeError

EXIT_OK = 0
EXIT_STEP_FAILED = 1
EXIT_BAD_INVOCATION = 2
CHAIN_MODULE = "pipec.backends.runtime.chain"


def load_function(component: str, code_root: str | None = None) -> Callable[..., Any]:
    """Import `MODULE:QUALNAME` (with `code_root` first on sys.path) and return the callable.

    A `@step` object is callable as the plain function outside a pipeline trace, so it is
    returned as is. Errors raised while importing the user's module propagate unchanged.
    """
    if code_root and code_root not in sys.path:
        sys.path.insert(0, code_root)
    module_name, _, qualname = component.partition(":")
    # A module already imported (the local target's workers are forked from a process that
    # imported it) is taken as it is, without the import machinery's Python code.
    target: Any = sys.modules.get(module_name) or importlib.import_module(module_name)
    for part in qualname.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise InvocationError(f"{module_name!r} has no attribute {qualname!r}") from None
    if not callable(target):
        raise InvocationError(f"{component} is not callable")
    return target  # type: ignore[no-any-return]


def load_input(source: str, kfp_executor_input: dict[str, Any] | None = None) -> Any:
    """The value of one `--input` SOURCE (see `SourceKind` for the kinds); `kfp_executor_input`:
    the parsed `--kfp-executor-input`, which `kfp-artifacts:` reads."""
    kind, rest = split_source(source)
    match kind:
        case SourceKind.VALUE:
            return _json(rest, "value:")
        case SourceKind.TEXT:
            # Engines that hand strings over raw (KFP's STRING parameters) pass them as is.
            return rest
        case SourceKind.VALUE_FILE:
            return _json(_read_text(rest), f"value-file:{rest}")
        case SourceKind.ENV:
            if rest not in os.environ:
                raise InvocationError(f"input environment variable {rest!r} is not set")
            return _json(os.environ[rest], f"env:{rest}")
        case SourceKind.ARTIFACT:
            return _artifact(rest)
        case SourceKind.ARTIFACTS:
            uris = _json(rest, "artifacts:")
            if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
                raise InvocationError("artifacts: takes a JSON list of output directories")
            return [_artifact(uri) for uri in uris]
        case SourceKind.KFP_ARTIFACTS:
            if kfp_executor_input is None:
                raise InvocationError(f"kfp-artifacts:{rest} needs {KFP_EXECUTOR_INPUT}")
            uris = executor_input.input_uris(kfp_executor_input, rest)
            return [_artifact(executor_input.readable(uri)) for uri in uris]
        case _:
            assert_never(kind)


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvocationError(f"{what} is not valid JSON: {exc}") from None


def _read_text(path: str) -> str:
    try:
        if store.is_remote(path):
            fsspec = importlib.import_module("fsspec")

            with fsspec.open(path, "r", encoding="utf-8") as handle:
                text: str = handle.read()
                return text
        with open(store.local_path(path), encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        raise InvocationError(f"value file {path!r} does not exist") from None


def _artifact(uri: str) -> Any:
    meta = store.read_meta(uri)
    if meta is None:
        raise InvocationError(f"input artifact {uri!r} does not exist (no {store.META_FILE})")
    return store.load(uri, meta)


def split_result(
    result: Any, returns: str, fields: tuple[str, ...] | None = None, where: str = "the step"
) -> dict[str, Any]:
    """Map a function's return value to named outputs according to `returns` (`fields`: the
    declared NamedTuple's field names, which a plain tuple of that length fills in order)."""
    if returns == "none":
        return {}
    if returns == "single":
        return {SINGLE_OUTPUT: result}
    if hasattr(result, "_asdict"):
        named: dict[str, Any] = dict(result._asdict())
        return named
    if isinstance(result, dict):
        return dict(result)
    if isinstance(result, tuple) and fields is not None and len(result) == len(fields):
        return dict(zip(fields, result, strict=True))
    expected = f"a NamedTuple with fields {', '.join(fields)}" if fields else "a NamedTuple"
    raise OutputTypeError(
        f"{where} is declared to return {expected} but returned a {type(result).__name__}"
    )


def execute(invocation: Invocation[str]) -> dict[str, dict[str, Any]]:
    """Run one step in this process; return output name -> meta.json content. Raises on error."""
    kfp = None
    if invocation.kfp_executor_input is not None:
        kfp = executor_input.parse(invocation.kfp_executor_input)
    if invocation.component.startswith(f"{CHAIN_MODULE}:"):
        # A fused chain (`runtime.chain`) runs its members through this function itself.
        chain = importlib.import_module(CHAIN_MODULE)
        metas: dict[str, dict[str, Any]] = chain.run_chain(invocation)
    else:
        function = load_function(invocation.component, invocation.code_root)
        kwargs = {name: load_input(source, kfp) for name, source in invocation.inputs.items()}
        outer = context.replace(context.from_environment(_scratch_parent(invocation)))
        try:
            metas = _call(function, kwargs, invocation)
        finally:
            context.restore(outer)  # also removes the step's own folder, whatever happened
    if invocation.kfp_executor_output is not None:
        executor_input.write_output(
            invocation.kfp_executor_output, invocation.kfp_output_uris, metas
        )
    if invocation.kfp_metrics is not None:
        assert kfp is not None  # `parse` requires the executor input with --kfp-metrics
        executor_input.write_metrics(
            kfp, invocation.kfp_metrics, context.logged_metrics(), invocation.kfp_output_uris, metas
        )
    return metas


def _scratch_parent(invocation: Invocation[str]) -> str | None:
    """Where `context().path()` puts its folder: beside the step's first local output, so that
    a Path output inside it is moved into the store by a rename, not copied (None: a temp dir)."""
    for dest in invocation.outputs.values():
        if not store.is_remote(dest):
            return str(store.local_path(dest).parent)
    return None


def _call(
    function: Callable[..., Any], kwargs: dict[str, Any], invocation: Invocation[str]
) -> dict[str, dict[str, Any]]:
    result = function(**kwargs)
    where = f"step {invocation.component}"
    declared = returns.declared_outputs(function, invocation.returns)
    if invocation.returns == "none" and result is not None and declared:
        returns.checked(result, "none", where)
    fields = returns.named_fields(function) if invocation.returns == "named" else None
    produced = {
        name: returns.checked(value, declared.get(name, "any"), f"output {name!r} of {where}")
        for name, value in split_result(result, invocation.returns, fields, where).items()
    }
    missing = sorted(set(invocation.outputs) - set(produced))
    if missing:
        raise InvocationError(
            f"{invocation.component} returned no output named {', '.join(missing)} "
            f"(it returned: {', '.join(sorted(produced)) or 'nothing'})"
        )
    annotations = returns.declared_annotations(function, invocation.returns)
    metas = {
        name: _store(produced[name], dest, f"output {name!r} of {where}", annotations.get(name))
        for name, dest in invocation.outputs.items()
    }
    _write_values(invocation, produced)
    return metas


def _write_values(invocation: Invocation[str], produced: dict[str, Any]) -> None:
    """`--output-value` and `--output-text`: outputs an engine also takes as JSON text or text.
    Outputs sent to one FILE arrive there together as one JSON object keyed by output name (an
    engine that reads one value per task: Airflow's XCom file); one output alone is its value
    as it is."""
    by_file: dict[str, dict[str, Any]] = {}
    for name, path in invocation.output_values.items():
        value = produced[name]
        if not materializers.is_json_value(value):
            raise InvocationError(
                f"{OUTPUT_VALUE} {name}: {type(value).__name__} is not a JSON value"
            )
        by_file.setdefault(path, {})[name] = value
    for path, named in by_file.items():
        (value,) = named.values() if len(named) == 1 else (named,)
        _write_text(path, materializers.canonical_json(value))
    for name, path in invocation.output_texts.items():
        value = produced[name]
        if not isinstance(value, str):
            raise InvocationError(f"{OUTPUT_TEXT} {name}: {type(value).__name__} is not a str")
        _write_text(path, value)


def write_extras(invocation: Invocation[str], metas: dict[str, dict[str, Any]]) -> None:
    """What a run writes besides the stored outputs, for outputs placed without running the step
    (a cache hit): values and texts read back from the store, and KFP's executor output."""
    wanted = set(invocation.output_values) | set(invocation.output_texts)
    _write_values(invocation, {name: store.read(invocation.outputs[name]) for name in wanted})
    if invocation.kfp_executor_output is not None:
        executor_input.write_output(
            invocation.kfp_executor_output, invocation.kfp_output_uris, metas
        )


def _store(value: Any, dest: str, what: str, declared: Any) -> dict[str, Any]:
    try:
        return store.write(value, dest, declared)
    except Exception as exc:  # pickle, pyarrow, a full disk: say which output it was
        raise OutputTypeError(f"{what} could not be stored: {type(exc).__name__}: {exc}") from exc


def _write_text(path: str, text: str) -> None:
    if store.is_remote(path):
        fsspec = importlib.import_module("fsspec")

        with fsspec.open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return
    local = store.local_path(path)
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(text, encoding="utf-8")


def _is_pipec_frame(frame_globals: dict[str, Any]) -> bool:
    name = str(frame_globals.get("__name__", ""))
    return (name == "__main__" and frame_globals.get("__file__") == __file__) or (
        name == "pipec" or name.startswith("pipec.")
    )


def _print_user_traceback(exc: BaseException) -> None:
    """Print the traceback from the first frame outside this module: the user's code."""
    tb = exc.__traceback__
    # Skip pipec's own frames (this module, the @step wrapper): user modules are never `pipec.*`.
    while tb is not None and tb.tb_next is not None and _is_pipec_frame(tb.tb_frame.f_globals):
        tb = tb.tb_next
    import traceback  # only when a step failed

    traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None, parsed: Invocation[str] | None = None) -> int:
    """Run one step from command-line arguments; return the exit code (see module docstring).
    `parsed`: what `parse(argv)` returned, parsed beforehand by a caller that forks this process
    (the local target parses in the runner, where it costs a forked worker no copied pages)."""
    try:
        if parsed is None:
            parsed = parse(sys.argv[1:] if argv is None else argv)
        invocation = parsed
        if invocation.context:
            # Context given on the command line becomes the environment every attempt reads.
            context.export(invocation.context, CONTEXT_KEYS)
            invocation = dataclasses.replace(invocation, context={})
        if invocation.cache_root is None:
            return _run(invocation)
        # The engine keeps no cache: the runtime's own (`runtime.cache`).
        from pipec.backends.runtime import cache

        lookup = cache.lookup_of(invocation)
        if cache.serve(invocation, lookup):
            return EXIT_OK
        code = _run(invocation)
        if code == EXIT_OK:
            cache.remember(invocation, lookup)
        return code
    except InvocationError as exc:
        print(f"pipec runtime: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_BAD_INVOCATION
    except (OutputTypeError, SecretError) as exc:  # the step failed, in one line
        print(f"pipec runtime: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_STEP_FAILED
    except BaseException as exc:  # the user's code: report it whatever it raised
        if isinstance(exc, KeyboardInterrupt):
            raise
        _print_user_traceback(exc)
        return EXIT_STEP_FAILED


def _run(invocation: Invocation[str]) -> int:
    """Run the step (its secrets read first, when the engine cannot hand them over)."""
    if invocation.secret_manager is not None:
        gcp_secrets.load(invocation.secret_manager, invocation.secrets)
    if invocation.supervised:  # the engine cannot keep the timeout or retry: we do
        from pipec.backends.runtime.attempts import run_attempts

        return run_attempts(invocation)
    execute(invocation)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
