"""Target-neutral optimizations: one rule per module, applied in the order of `RULES`.

Each rule is a pass (`(pipeline, ctx) -> pipeline`, see `pipec.ir.passes`) over a validated
pipeline; the result must validate again and compute the same outputs. `pipec compile` and
`pipec run` apply them unless `--no-optimize` is given.
"""

from __future__ import annotations

from pipec.ir.passes import Pass

RULES: tuple[Pass, ...] = ()

__all__ = ["RULES"]
