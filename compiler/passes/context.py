"""The pass context, re-exported from `pipec.ir.passes` (target lowerings share it)."""

from __future__ import annotations

from pipec.ir.passes import Pass, PassContext

__all__ = ["Pass", "PassContext"]
