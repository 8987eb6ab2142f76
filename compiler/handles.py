"""Symbolic values seen while tracing: step outputs, parameters, loop items, conditions.

A pipeline function is called with handles instead of values. Handles remember which IR binding
they stand for; comparing them builds condition expressions. Using one as a Python bool is the
classic mistake (`if score > 0.9:`), so it raises a diagnostic that points to `when`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pipec.errors import PipecUsageError
from pipec.ir import types
from pipec.ir.model import (
    And,
    Binding,
    Compare,
    CompareOp,
    Const,
    Expr,
    LoopItem,
    Not,
    Operand,
    Or,
    OutputRef,
    ParamRef,
)

if TYPE_CHECKING:
    from pipec.tracing import StepDraft


def _no_bool(what: str) -> PipecUsageError:
    return PipecUsageError(
        "F004",
        f"{what} has no value while the pipeline is being compiled, so it cannot be used as a "
        "Python bool (in `if`, `and`, `or`, `not`, or `while`)",
        "branch with `with when(cond):` / `with otherwise():`, and combine conditions with "
        "`&`, `|` and `~`",
    )


def to_operand(value: object) -> Operand:
    """A handle's binding, or a literal as a constant; used on both sides of a comparison."""
    if isinstance(value, Handle):
        binding = value.binding
        if isinstance(binding, Const | ParamRef | OutputRef | LoopItem):
            return binding
        raise PipecUsageError(
            "F009",
            "a collected list cannot be compared directly",
            "pass it to a step that computes the value to test",
        )
    if types.infer(value) is None:
        raise PipecUsageError(
            "F003",
            f"the constant {value!r} is not a value (int, float, str, bool, None, list, dict)",
            "compare against a JSON-able literal",
        )
    return Const(value=value)  # type: ignore[arg-type]


class Cond:
    """A condition expression under construction: `a > 1`, `(a > 1) & ~flag`."""

    __slots__ = ("expr",)

    def __init__(self, expr: Expr) -> None:
        self.expr = expr

    def __and__(self, other: object) -> Cond:
        return Cond(And(args=(self.expr, to_expr(other))))

    def __rand__(self, other: object) -> Cond:
        return Cond(And(args=(to_expr(other), self.expr)))

    def __or__(self, other: object) -> Cond:
        return Cond(Or(args=(self.expr, to_expr(other))))

    def __ror__(self, other: object) -> Cond:
        return Cond(Or(args=(to_expr(other), self.expr)))

    def __invert__(self) -> Cond:
        return Cond(Not(arg=self.expr))

    def __bool__(self) -> bool:
        raise _no_bool("a condition")


def to_expr(value: object) -> Expr:
    """Anything `when()` accepts, as an IR expression."""
    if isinstance(value, Cond):
        return value.expr
    if isinstance(value, Handle):
        return to_operand(value)
    raise PipecUsageError(
        "F010",
        f"when() needs a condition built from step outputs or parameters, not {value!r}",
        "write e.g. `with when(score > 0.9):`; a constant condition is just Python `if`",
    )


class Handle:
    """A symbolic value: what a step output, parameter or loop item is while tracing."""

    def __init__(self, binding: Binding, type_: str, label: str) -> None:
        self.binding = binding
        self.type = type_
        self.label = label

    def __repr__(self) -> str:
        return f"<{self.label}: {self.type}>"

    __hash__ = object.__hash__

    def _compare(self, op: CompareOp, other: object) -> Cond:
        return Cond(Compare(op=op, left=to_operand(self), right=to_operand(other)))

    def __eq__(self, other: object) -> Cond:  # type: ignore[override]
        return self._compare("==", other)

    def __ne__(self, other: object) -> Cond:  # type: ignore[override]
        return self._compare("!=", other)

    def __lt__(self, other: object) -> Cond:
        return self._compare("<", other)

    def __le__(self, other: object) -> Cond:
        return self._compare("<=", other)

    def __gt__(self, other: object) -> Cond:
        return self._compare(">", other)

    def __ge__(self, other: object) -> Cond:
        return self._compare(">=", other)

    def __and__(self, other: object) -> Cond:
        return Cond(to_expr(self)) & other

    def __or__(self, other: object) -> Cond:
        return Cond(to_expr(self)) | other

    def __invert__(self) -> Cond:
        return ~Cond(to_expr(self))

    def __bool__(self) -> bool:
        raise _no_bool(self.label)

    def __getitem__(self, key: object) -> Any:
        raise PipecUsageError(
            "F017",
            f"{self.label} cannot be indexed while the pipeline is being compiled ([{key!r}])",
            "pass the whole value to a step and read the field inside it, or make the producing "
            "step return a NamedTuple with that field",
        )

    def __iter__(self) -> Iterator[Any]:
        raise PipecUsageError(
            "F011",
            f"{self.label} is a single output and cannot be unpacked or iterated while compiling",
            "iterate over a list output with `with foreach(items) as item:`",
        )


class StepCall:
    """What calling a step returns: its outputs and `.after()` for ordering without data."""

    def __init__(self, draft: StepDraft) -> None:
        self._draft = draft

    def after(self, *others: object) -> StepCall:
        """Run this step only after the steps that produced `others` (handles or step calls)."""
        for other in others:
            self._draft.add_after(other)
        return self


class OutputHandle(Handle):
    """A single step output; also carries `.after()` of the step that produces it."""

    def __init__(self, draft: StepDraft, output: str, type_: str) -> None:
        super().__init__(OutputRef(step=draft.id, output=output), type_, f"output of {draft.id!r}")
        self.draft = draft

    def after(self, *others: object) -> OutputHandle:
        """Run the producing step only after `others`."""
        for other in others:
            self.draft.add_after(other)
        return self


class NamedOutputs(StepCall):
    """The outputs of a step that returns a NamedTuple: `parts.train`, or unpack them in order."""

    def __init__(self, draft: StepDraft, outputs: dict[str, OutputHandle]) -> None:
        super().__init__(draft)
        self._outputs = outputs

    def __getattr__(self, name: str) -> OutputHandle:
        outputs = self.__dict__.get("_outputs", {})
        if name in outputs:
            return outputs[name]  # type: ignore[no-any-return]
        raise AttributeError(
            f"step {self._draft.id!r} has no output {name!r}; it has {', '.join(outputs)}"
        )

    def __iter__(self) -> Iterator[OutputHandle]:
        return iter(self._outputs.values())

    def __bool__(self) -> bool:
        raise _no_bool(f"the outputs of {self._draft.id!r}")
