"""The authoring API: `@step`, `@pipeline`, `when`, `otherwise`, `foreach`, `collect`.

Decorating only records a spec. Calling a step inside a traced pipeline records a call; calling it
anywhere else calls the plain function, so unit tests of steps stay ordinary Python.

The tracer and the IR models are imported by the functions that trace, never at import: every
step's fresh interpreter imports this module, traces nothing, and must not pay for pydantic.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from pipec.errors import PipecUsageError, caller_location
from pipec.ir import types
from pipec.step_options import Resources, StepOptions, step_options

if TYPE_CHECKING:
    from pipec.handles import Handle
    from pipec.tracing import Trace

P = ParamSpec("P")
R = TypeVar("R")

class StepFunction(Generic[P, R]):
    """A function decorated with `@step`: a plain function outside pipelines, a recorded call in."""

    def __init__(self, func: Callable[P, R], options: StepOptions) -> None:
        functools.update_wrapper(self, func)
        self.func = func
        self.options = options

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        trace = _active_trace()
        if trace is None:
            return self.func(*args, **kwargs)
        result: R = trace.call_step(self, args, kwargs)
        return result

    def with_options(self, **options: Any) -> StepFunction[P, R]:
        """A copy with some options changed, for one call site: `train.with_options(retries=3)`.

        `targets={"vertex": {"image": ...}}` gives options for one target only; compiled for
        that target, the step has them in place of its own (docs/steps.md)."""
        return StepFunction(self.func, step_options(self.options, **options))

    def __repr__(self) -> str:
        return f"<step {self.func.__qualname__}>"


@overload
def step(func: Callable[P, R], /) -> StepFunction[P, R]: ...


@overload
def step(
    *,
    name: str | None = None,
    image: str | None = None,
    resources: Resources | None = None,
    retries: int = 0,
    retry_delay: float | str = 0.0,
    timeout: float | str | None = None,
    cache: bool = True,
    secrets: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    targets: Mapping[str, Mapping[str, Any]] | None = None,
) -> Callable[[Callable[P, R]], StepFunction[P, R]]: ...


def step(func: Callable[P, R] | None = None, /, **options: Any) -> Any:
    """Declare a pipeline step. Works bare (`@step`) and with options (`@step(retries=2)`)."""
    if func is not None:
        return StepFunction(func, StepOptions())
    opts = step_options(**options)

    def decorate(f: Callable[P, R]) -> StepFunction[P, R]:
        return StepFunction(f, opts)

    return decorate


class PipelineFunction:
    """A function decorated with `@pipeline`. Calling it outside a trace runs it locally."""

    def __init__(
        self, func: Callable[..., Any], name: str, schedule: str | None, description: str | None
    ) -> None:
        functools.update_wrapper(self, func)
        self.func = func
        self.name = name
        self.schedule = schedule
        self.description = description

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        trace = _active_trace()
        if trace is not None:
            return trace.call_pipeline(self, args, kwargs)
        from pipec import driver  # the driver imports backends; only needed for direct runs

        return driver.run_function(self, args, kwargs, as_script=_called_from_script())

    def __repr__(self) -> str:
        return f"<pipeline {self.name}>"


@overload
def pipeline(func: Callable[..., Any], /) -> PipelineFunction: ...


@overload
def pipeline(
    *, name: str | None = None, schedule: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], PipelineFunction]: ...


def pipeline(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    schedule: str | None = None,
    description: str | None = None,
) -> Any:
    """Declare a pipeline: its parameters are the function's, its body calls steps."""

    def decorate(f: Callable[..., Any]) -> PipelineFunction:
        doc = description if description is not None else _first_line(f.__doc__)
        return PipelineFunction(f, name or f.__name__, schedule, doc)

    return decorate(func) if func is not None else decorate


def _active_trace() -> Trace | None:
    """The trace being recorded, if any. A trace exists only once `pipec.tracing` is imported, so
    a step called by the step runtime (which traces nothing) never imports the tracer."""
    if "pipec.tracing" not in sys.modules:
        return None
    from pipec import tracing

    return tracing.current()


def _called_from_script() -> bool:
    """Whether the caller is the top level of a script run as `python file.py` (not an
    interactive session, which sets `sys.ps1`, and not a function or another module)."""
    caller = sys._getframe(2)
    return (
        caller.f_globals.get("__name__") == "__main__"
        and caller.f_code.co_name == "<module>"
        and not hasattr(sys, "ps1")
    )


def _first_line(doc: str | None) -> str | None:
    if not doc:
        return None
    return doc.strip().splitlines()[0].strip() or None


@contextmanager
def when(condition: object) -> Iterator[None]:
    """Run the block only when `condition` holds at run time: `with when(score > 0.9):`."""
    from pipec import tracing
    from pipec.handles import to_expr

    trace = tracing.require("when()")
    location = caller_location(trace.root, 3)
    try:
        expr = to_expr(condition)
    except PipecUsageError as exc:
        exc.location = exc.location or location
        raise
    with trace.block("condition", {"test": expr}, location):
        yield


@contextmanager
def otherwise() -> Iterator[None]:
    """Run the block when the directly preceding `when` did not hold."""
    from pipec import tracing

    trace = tracing.require("otherwise()")
    with trace.otherwise(caller_location(trace.root, 3)):
        yield


@contextmanager
def foreach(items: object, parallelism: int | None = None) -> Iterator[Handle]:
    """Run the block once per item of a literal list, a list parameter or a list output."""
    from pipec import tracing
    from pipec.handles import Handle
    from pipec.ir.diagnostics import Diagnostic
    from pipec.ir.model import Const, LoopItem

    trace = tracing.require("foreach()")
    location = caller_location(trace.root, 3)
    if isinstance(items, Handle):
        binding = items.binding
        item_type = types.item_type(items.type) or "any"
    else:
        value = list(items) if isinstance(items, tuple) else items
        if not isinstance(value, list) or types.infer(value) is None:
            raise PipecUsageError(
                "T104",
                f"foreach() needs a list, a list parameter or a list output, not {value!r}",
                "pass a JSON-able list literal or a handle whose type is list[...]",
                location,
            )
        binding = Const(value=value)
        item_type = types.item_type(types.infer(value) or "any") or "any"
    if isinstance(parallelism, Handle):
        # Engines fix a loop's parallelism when the pipeline is compiled, not per run.
        trace.diagnostics.append(
            Diagnostic(
                code="F014",
                message=f"parallelism must be a constant number, not {parallelism.label}",
                hint="write a number (e.g. parallelism=4); to change it per run, compile again",
                location=location,
            )
        )
        parallelism = None
    elif parallelism is not None and (
        isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1
    ):
        trace.diagnostics.append(
            Diagnostic(
                code="F014",
                message=f"parallelism must be a whole number >= 1, got {parallelism!r}",
                hint="leave it out for no limit",
                location=location,
            )
        )
        parallelism = None
    with trace.block("loop", {"items": binding, "parallelism": parallelism}, location) as loop:
        yield Handle(LoopItem(loop=loop.id), item_type, f"item of {loop.id!r}")


def collect(output: object) -> Handle:
    """Fan-in: the list of `output` from every iteration of the loop that produced it."""
    from pipec import tracing
    from pipec.handles import Handle, OutputHandle
    from pipec.ir.model import Collect, OutputRef

    trace = tracing.require("collect()")
    location = caller_location(trace.root, 2)
    if not isinstance(output, OutputHandle):
        raise PipecUsageError(
            "C002",
            f"collect() takes one step output produced inside a foreach, not {output!r}",
            "call collect(x) on the output of a step called inside `with foreach(...)`",
            location,
        )
    loop = trace.loop_of(output.draft.id)
    if loop is None:
        raise PipecUsageError(
            "C002",
            f"collect() needs an output produced inside a foreach; {output.draft.id!r} is not",
            "pass the output directly, without collect()",
            location,
        )
    ref = output.binding
    assert isinstance(ref, OutputRef)
    return Handle(
        Collect(step=ref.step, output=ref.output, loop=loop),
        f"list[{output.type}]",
        f"collected {output.label}",
    )
