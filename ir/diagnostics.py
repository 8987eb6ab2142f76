"""Diagnostics: one record per problem, with its code, place, what is wrong and how to fix it."""

from __future__ import annotations

from typing import Literal

from pipec.ir.model import Location, Model

Severity = Literal["error", "warning"]


class Diagnostic(Model):
    """One problem found in a pipeline.

    `code` is stable (tests and users can match on it), `message` says what is wrong and `hint`
    how to fix it. `location` points at the offending call when one is known.
    """

    code: str
    message: str
    hint: str = ""
    location: Location | None = None
    severity: Severity = "error"

    def render(self) -> str:
        """The one-problem text shown to users: `file:line: error[CODE]: message` + hint."""
        where = f"{self.location.file}:{self.location.line}: " if self.location else ""
        text = f"{where}{self.severity}[{self.code}]: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class InvalidInput(Exception):
    """Base of every error that means "what the user gave is wrong" (a setting, a parameter
    value, a target name, a run id, ...): the CLI prints its message as one line and exits 2."""


class DiagnosticError(InvalidInput):
    """Raised when a pipeline has errors; carries every diagnostic found, not just the first."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(d.render() for d in diagnostics))


def errors(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """The diagnostics that stop compilation."""
    return [d for d in diagnostics if d.severity == "error"]
