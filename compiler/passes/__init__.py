"""Compiler passes over the IR, in phases. Each module holds one pass, a function with the
module's name and the signature `(pipeline, ctx) -> pipeline` (`pipec.ir.passes`).

The driver runs the phases in this order:

0. `targets.for_target`: each step takes the options given for the target it is compiled for.
1. `VALIDATE`: validators; they only add diagnostics. Errors stop here.
2. the target's capability check and its own `check` (`pipec.backends.base`).
3. `optimize.RULES`: target-neutral rewrites (skipped with `--no-optimize`).
4. the target's lowerings (`Backend.lowerings`, from `pipec.backends.lowerings`).
5. `CANONICAL`: one canonical order, so output is deterministic whatever came before.
"""

from __future__ import annotations

from pipec.ir.passes import Pass, PassContext, run
from pipec.passes.canonical import canonical
from pipec.passes.naming import naming
from pipec.passes.optimize import RULES as OPTIMIZE
from pipec.passes.options import options
from pipec.passes.ordering import ordering
from pipec.passes.scopes import scopes
from pipec.passes.signature import signature
from pipec.passes.typecheck import typecheck
from pipec.passes.values import values

VALIDATE: tuple[Pass, ...] = (naming, values, signature, typecheck, scopes, ordering, options)
CANONICAL: tuple[Pass, ...] = (canonical,)

__all__ = ["CANONICAL", "OPTIMIZE", "VALIDATE", "Pass", "PassContext", "run"]
