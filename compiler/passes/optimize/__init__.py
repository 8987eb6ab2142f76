"""Target-neutral optimizations: one rule per module, applied in the order of `RULES`.

Each rule is a pass (`(pipeline, ctx) -> pipeline`, see `pipec.ir.passes`) over a validated
pipeline; the result must validate again and compute the same outputs, and every change is
recorded with `ctx.rewrote(...)` so `pipec explain` can say what happened and why. `pipec compile`
and `pipec run` apply them unless `--no-optimize` is given.

1. `fold`: condition tests over literals computed; dead branches dropped.
2. `prune`: loops over a literal `[]` and empty blocks dropped.
3. `cse`: cacheable steps doing the same work merged into one.
4. `prune` again: merging can empty a block.

Fusion of chains (`pipec.backends.lowerings.fuse`) depends on the target's `fuse` setting, so it
runs with the target's lowerings, after these.
"""

from __future__ import annotations

from pipec.ir.passes import Pass
from pipec.passes.optimize.cse import cse
from pipec.passes.optimize.fold import fold
from pipec.passes.optimize.prune import prune

RULES: tuple[Pass, ...] = (fold, prune, cse, prune)
RULE_NAMES: tuple[str, ...] = tuple(dict.fromkeys(rule.__name__ for rule in RULES))
"""Each rule once, in order (what `pipec targets` lists)."""

__all__ = ["RULES", "RULE_NAMES"]
