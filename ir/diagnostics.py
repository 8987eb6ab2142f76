"""Diagnostics: one record per problem, with its code, place, what is wrong and how to fix it.

The record itself (`Diagnostic`) is an IR model and lives in `pipec.ir.model`; it is loaded from
here on first use (PEP 562), so that the error classes below cost nothing to import: the step
runtime's `pipec.backends` imports `InvalidInput` in every step's fresh interpreter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipec.ir.model import Diagnostic as Diagnostic


def __getattr__(name: str) -> Any:
    if name == "Diagnostic":
        from pipec.ir.model import Diagnostic

        return Diagnostic
    raise AttributeError(f"module 'pipec.ir.diagnostics' has no attribute {name!r}")


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
