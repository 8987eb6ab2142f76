"""Tracing: call a pipeline function with handles and record what it does as IR.

The current trace lives in a ContextVar (no globals), so a step called outside a trace is a plain
function call. Nodes are recorded as mutable drafts (a step's `.after()` may be added later) and
frozen into IR models once the pipeline function returns.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from pipec.errors import PipecUsageError, caller_location, is_pipec_file, relative_file
from pipec.handles import Handle, NamedOutputs, OutputHandle, StepCall
from pipec.ir import names, types
from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import (
    Binding,
    Component,
    Condition,
    Const,
    Group,
    Location,
    Loop,
    Node,
    ParamRef,
    Pipeline,
    Step,
)
from pipec.signatures import def_location, describe_component, pipeline_params, short

if TYPE_CHECKING:
    from pipec.dsl import PipelineFunction, StepFunction
    from pipec.step_options import Problem

_CURRENT: contextvars.ContextVar[Trace | None] = contextvars.ContextVar("pipec_trace", default=None)


def current() -> Trace | None:
    """The trace being recorded in this context, if any."""
    return _CURRENT.get()


def require(api: str) -> Trace:
    """The current trace, or a usage error saying `api` only works inside a pipeline."""
    trace = _CURRENT.get()
    if trace is None:
        raise PipecUsageError(
            "F006",
            f"{api} can only be used inside a @pipeline function",
            "move it into the body of a function decorated with @pipeline",
        )
    return trace


@dataclass
class StepDraft:
    """A step being recorded; frozen into `ir.Step` at the end of the trace."""

    id: str
    fields: dict[str, Any]
    after: list[str] = field(default_factory=list)

    def add_after(self, other: object) -> None:
        producer = _producer_of(other)
        if producer is None:
            raise PipecUsageError(
                "F012",
                f".after() takes step outputs or step calls, not {other!r}",
                "pass what a step call returned, e.g. `cleanup().after(model)`",
            )
        if producer not in self.after:
            self.after.append(producer)

    def freeze(self) -> Step:
        return Step(id=self.id, after=tuple(sorted(self.after)), **self.fields)


def _producer_of(value: object) -> str | None:
    if isinstance(value, OutputHandle):
        return value.draft.id
    if isinstance(value, StepCall):
        return value._draft.id
    return None


@dataclass
class BlockDraft:
    """A condition, loop or group being recorded."""

    kind: str
    id: str
    location: Location
    spec: dict[str, Any]
    body: list[Draft] = field(default_factory=list)
    otherwise: list[Draft] | None = None

    def freeze(self) -> Node:
        body = tuple(d.freeze() for d in self.body)
        if self.kind == "condition":
            rest = tuple(d.freeze() for d in self.otherwise or ())
            return Condition(
                id=self.id, location=self.location, then=body, otherwise=rest, **self.spec
            )
        if self.kind == "loop":
            return Loop(id=self.id, location=self.location, body=body, **self.spec)
        return Group(id=self.id, location=self.location, body=body, **self.spec)


Draft = StepDraft | BlockDraft


class _Frame(NamedTuple):
    block: BlockDraft | None
    body: list[Draft]
    scope: str


class Trace:
    """Records one pipeline: components, nodes, diagnostics."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ids: set[str] = set()
        self.components: dict[int, Component] = {}
        self.component_ids: set[str] = set()
        self.top: list[Draft] = []
        self.stack: list[_Frame] = [_Frame(None, self.top, "")]
        self.diagnostics: list[Diagnostic] = []
        self.counters: dict[str, int] = {}
        self.step_loops: dict[str, list[str]] = {}
        self.next_suffix: dict[str, int] = {}

    # ---------------------------------------------------------------- scopes

    def _next_id(self, kind: str) -> str:
        self.counters[kind] = self.counters.get(kind, 0) + 1
        return names.unique_id(f"{kind}_{self.counters[kind]}", self.ids, kind, self.next_suffix)

    @contextmanager
    def block(
        self, kind: str, spec: dict[str, Any], location: Location, block_id: str = ""
    ) -> Iterator[BlockDraft]:
        draft = BlockDraft(kind, block_id or self._next_id(kind), location, spec)
        self.stack[-1].body.append(draft)
        self.stack.append(_Frame(draft, draft.body, draft.id))
        try:
            yield draft
        finally:
            self.stack.pop()

    @contextmanager
    def otherwise(self, location: Location) -> Iterator[None]:
        body = self.stack[-1].body
        last = body[-1] if body else None
        if (
            not isinstance(last, BlockDraft)
            or last.kind != "condition"
            or last.otherwise is not None
        ):
            raise PipecUsageError(
                "F005",
                "otherwise() must directly follow a `with when(...):` block",
                "put `with otherwise():` right after the `with when(...):` block it belongs to",
                location,
            )
        last.otherwise = []
        self.stack.append(_Frame(last, last.otherwise, last.id))
        try:
            yield
        finally:
            self.stack.pop()

    def innermost_loops(self) -> list[str]:
        """Ids of the loops enclosing the current position, outermost first."""
        return [f.block.id for f in self.stack if f.block is not None and f.block.kind == "loop"]

    def loop_of(self, step_id: str) -> str | None:
        """The loop `collect()` of this step's output gathers over: the innermost loop around
        the step that does not also enclose the current position."""
        here = set(self.innermost_loops())
        outside = [loop for loop in self.step_loops.get(step_id, []) if loop not in here]
        return outside[-1] if outside else None

    # ---------------------------------------------------------------- bindings

    def bind(self, value: object, what: str, location: Location) -> Binding | None:
        """The IR binding for an argument; records a diagnostic and returns None when impossible."""
        if isinstance(value, Handle):
            return value.binding
        if isinstance(value, StepCall) and not isinstance(value, NamedOutputs):
            self.diagnostics.append(
                Diagnostic(
                    code="F013",
                    message=f"{what} is bound to a step that returns nothing",
                    hint="use .after() for ordering without data, or make the step return a value",
                    location=location,
                )
            )
            return None
        if isinstance(value, NamedOutputs):
            self.diagnostics.append(
                Diagnostic(
                    code="F013",
                    message=f"{what} is bound to a step with several outputs",
                    hint="pick one output by name, e.g. `parts.train`",
                    location=location,
                )
            )
            return None
        if isinstance(value, tuple):
            value = list(value)
        if types.infer(value) is None:
            self.diagnostics.append(
                Diagnostic(
                    code="F003",
                    message=f"{what} is the constant {short(value)}, which is not a value "
                    "(int, float, str, bool, None, or a list / dict of them)",
                    hint="produce it in a step and pass the step's output, or pass a JSON-able "
                    "literal",
                    location=location,
                )
            )
            return None
        return Const(value=value)  # type: ignore[arg-type]

    # ---------------------------------------------------------------- steps

    def report_problems(self, problems: Sequence[Problem]) -> None:
        """Bad step options, each once however often the step is called."""
        for problem in problems:
            location = Location(file=relative_file(problem.file, self.root), line=problem.line)
            diagnostic = Diagnostic(
                code=problem.code, message=problem.message, hint=problem.hint, location=location
            )
            if diagnostic not in self.diagnostics:
                self.diagnostics.append(diagnostic)

    def component(self, fn: StepFunction[Any, Any]) -> Component:
        """The component for a step function, built once per function."""
        key = id(fn.func)
        if key not in self.components:
            comp = describe_component(fn.func, self.root, self.component_ids)
            self.components[key] = comp
            if "<locals>" in fn.func.__qualname__:
                # Engines import a step by module and name: a function made inside another
                # function exists only while that function runs.
                outer = fn.func.__qualname__.split(".<locals>")[0]
                self.diagnostics.append(
                    Diagnostic(
                        code="F018",
                        message=f"step {fn.func.__name__!r} is defined inside {outer!r}; no "
                        "engine can import it from there",
                        hint="define the @step function at the top level of its module",
                        location=def_location(fn.func, self.root),
                    )
                )
        return self.components[key]

    def call_step(
        self, fn: StepFunction[Any, Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Any:
        location = caller_location(self.root, 3)
        comp = self.component(fn)
        opts = fn.options
        self.report_problems(opts.problems)
        display = opts.name or fn.func.__name__
        step_id = names.unique_id(display, self.ids, "step", self.next_suffix)
        if not opts.name and step_id != names.to_id(display):
            display = step_id
        bound: dict[str, Binding] = {}
        positional = [p.name for p in comp.inputs]
        if len(args) > len(positional):
            self.diagnostics.append(
                Diagnostic(
                    code="F002",
                    message=f"{display!r} takes {len(positional)} positional argument(s) but "
                    f"{len(args)} were given",
                    hint="pass inputs by keyword to be sure which one gets what",
                    location=location,
                )
            )
        for name, value in [*zip(positional, args, strict=False), *kwargs.items()]:
            binding = self.bind(value, f"input {name!r} of {display!r}", location)
            if binding is not None:
                bound[name] = binding
        fields: dict[str, Any] = {
            "name": display,
            "component": comp.id,
            "args": bound,
            "location": location,
            **opts.ir_fields(),
        }
        draft = StepDraft(step_id, fields)
        self.step_loops[step_id] = self.innermost_loops()
        self.stack[-1].body.append(draft)
        if comp.returns == "named":
            return NamedOutputs(
                draft, {p.name: OutputHandle(draft, p.name, p.type) for p in comp.outputs}
            )
        if comp.returns == "single":
            port = comp.outputs[0]
            return OutputHandle(draft, port.name, port.type)
        return StepCall(draft)

    # ---------------------------------------------------------------- nested pipelines

    def call_pipeline(
        self, fn: PipelineFunction, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Any:
        location = caller_location(self.root, 3)
        params = pipeline_params(fn.func, self.root, self.diagnostics)
        values = inspect.signature(fn.func).bind_partial(*args, **kwargs).arguments
        handles: dict[str, Any] = {}
        for param in params:
            if param.name in values:
                binding = self.bind(
                    values[param.name], f"parameter {param.name!r} of {fn.name!r}", location
                )
            elif not param.required:
                binding = Const(value=param.default)
            else:
                self.diagnostics.append(
                    Diagnostic(
                        code="S002",
                        message=f"nested pipeline {fn.name!r} is missing parameter {param.name!r}",
                        hint=f"pass {param.name}=... where {fn.name!r} is called",
                        location=location,
                    )
                )
                binding = None
            if binding is not None:
                handles[param.name] = Handle(binding, param.type, f"parameter {param.name!r}")
        group_id = names.unique_id(fn.name, self.ids, "group", self.next_suffix)
        with self.block("group", {"pipeline": fn.name}, location, group_id):
            return fn.func(**handles)

    # ---------------------------------------------------------------- result

    def freeze(self) -> tuple[tuple[Node, ...], tuple[Component, ...]]:
        body = tuple(d.freeze() for d in self.top)
        return body, tuple(sorted(self.components.values(), key=lambda c: c.id))


@contextmanager
def activate(trace: Trace) -> Iterator[Trace]:
    """Make `trace` the current one for the duration of the block."""
    token = _CURRENT.set(trace)
    try:
        yield trace
    finally:
        _CURRENT.reset(token)


def trace_pipeline(fn: PipelineFunction, root: Path) -> tuple[Pipeline | None, list[Diagnostic]]:
    """Trace a pipeline function into IR. Returns None with diagnostics when tracing stopped."""
    trace = Trace(root)
    location = def_location(fn.func, root)
    params = pipeline_params(fn.func, root, trace.diagnostics)
    handles = {
        p.name: Handle(ParamRef(param=p.name), p.type, f"parameter {p.name!r}") for p in params
    }
    try:
        with activate(trace):
            fn.func(**handles)
    except PipecUsageError as exc:
        trace.diagnostics.append(
            Diagnostic(
                code=exc.code,
                message=exc.message,
                hint=exc.hint,
                location=exc.location or _user_frame(exc, root),
            )
        )
        return None, trace.diagnostics
    except (Exception, SystemExit) as exc:  # the user's pipeline body raised (or exited)
        trace.diagnostics.append(
            Diagnostic(
                code="F016",
                message=f"pipeline {fn.name!r} raised {type(exc).__name__}: {exc} while it was "
                "being compiled",
                hint="fix the error at this line; the pipeline body runs once at compile time "
                "with symbolic values (run with --debug for the full traceback)",
                location=_user_frame(exc, root),
            )
        )
        return None, trace.diagnostics
    body, components = trace.freeze()
    pipeline = Pipeline(
        name=fn.name,
        id=names.to_id(fn.name, "pipeline"),
        description=fn.description,
        schedule=fn.schedule,
        params=tuple(params),
        components=components,
        body=body,
        location=location,
    )
    return pipeline, trace.diagnostics


def _user_frame(exc: BaseException, root: Path) -> Location | None:
    """The innermost traceback frame in user code (outside pipec's own files)."""
    tb = exc.__traceback__
    found: Location | None = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not is_pipec_file(filename) and not filename.startswith("<"):
            found = Location(file=relative_file(filename, root), line=tb.tb_lineno)
        tb = tb.tb_next
    return found
