"""The state passes share: the diagnostics found so far and the target being compiled for."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import Location


@dataclass
class PassContext:
    """Handed to every pass; validators append to `diagnostics`."""

    target: str | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def error(self, code: str, message: str, hint: str, location: Location | None) -> None:
        """Record one error."""
        self.diagnostics.append(
            Diagnostic(code=code, message=message, hint=hint, location=location)
        )
