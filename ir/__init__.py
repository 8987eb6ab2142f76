"""pipec's intermediate representation: target-neutral, typed, frozen pydantic models.

Imports nothing else from pipec, so backends and tools can load IR cheaply. The names below are
loaded on first use (PEP 562): the step runtime imports `pipec.ir.types` in every step's fresh
interpreter, and must not pay for pydantic and the models it never uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipec.ir.diagnostics import DiagnosticError
    from pipec.ir.model import (
        IR_VERSION,
        And,
        Binding,
        Collect,
        Compare,
        Component,
        Condition,
        Const,
        Diagnostic,
        Expr,
        Group,
        Location,
        Loop,
        LoopItem,
        Node,
        Not,
        Operand,
        Or,
        OutputRef,
        Param,
        ParamRef,
        Pipeline,
        Port,
        Resources,
        Step,
    )
    from pipec.ir.serde import from_json, json_schema, to_json

__all__ = [
    "IR_VERSION",
    "And",
    "Binding",
    "Collect",
    "Compare",
    "Component",
    "Condition",
    "Const",
    "Diagnostic",
    "DiagnosticError",
    "Expr",
    "Group",
    "Location",
    "Loop",
    "LoopItem",
    "Node",
    "Not",
    "Operand",
    "Or",
    "OutputRef",
    "Param",
    "ParamRef",
    "Pipeline",
    "Port",
    "Resources",
    "Step",
    "from_json",
    "json_schema",
    "to_json",
]

_HOME = {"DiagnosticError": "pipec.ir.diagnostics", "from_json": "pipec.ir.serde"}
_HOME |= {"json_schema": "pipec.ir.serde", "to_json": "pipec.ir.serde"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        # Not a re-export: let `from pipec.ir import types` fall back to importing the submodule.
        raise AttributeError(f"module 'pipec.ir' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME.get(name, "pipec.ir.model")), name)
    globals()[name] = value  # later lookups find it without coming here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
