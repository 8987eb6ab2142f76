"""What every IR -> IR pass shares, wherever it lives (front-end validators and optimizations in
`pipec.passes`, target lowerings in `pipec.backends`): the signature and the context.

A pass is a function `(pipeline, ctx) -> pipeline`. Validators only add diagnostics and return the
pipeline unchanged; rewrites return a new pipeline and say what they did with `ctx.rewrote(...)`
(`pipec explain` prints those records). `run` applies a tuple of them in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import Location, Pipeline


@dataclass(frozen=True)
class Rewrite:
    """One change a rewriting pass made: which pass, the steps it touched (the one that remains
    first), why, and where the user wrote the step it is about."""

    rule: str
    steps: tuple[str, ...]
    why: str
    location: Location | None = None


@dataclass
class PassContext:
    """Handed to every pass: the target being compiled for (None when checking only), the
    diagnostics found so far and the rewrites made so far."""

    target: str | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    rewrites: list[Rewrite] = field(default_factory=list)

    def rewrote(
        self, rule: str, steps: tuple[str, ...], why: str, location: Location | None = None
    ) -> None:
        """Record one rewrite (for `pipec explain`)."""
        self.rewrites.append(Rewrite(rule, steps, why, location))

    def error(self, code: str, message: str, hint: str, location: Location | None) -> None:
        """Record one error: compilation stops after the phase that found it."""
        self.diagnostics.append(
            Diagnostic(code=code, message=message, hint=hint, location=location)
        )

    def warn(self, code: str, message: str, hint: str, location: Location | None) -> None:
        """Record one warning: shown to the user, compilation goes on."""
        self.diagnostics.append(
            Diagnostic(
                code=code, message=message, hint=hint, location=location, severity="warning"
            )
        )

    @property
    def failed(self) -> bool:
        """Whether an error was recorded."""
        return any(d.severity == "error" for d in self.diagnostics)


Pass = Callable[[Pipeline, PassContext], Pipeline]


def run(passes: Iterable[Pass], pipeline: Pipeline, ctx: PassContext) -> Pipeline:
    """Apply `passes` in order."""
    for apply in passes:
        pipeline = apply(pipeline, ctx)
    return pipeline
