"""Per-target step options: compiling for one target puts the options given for it
(`with_options(targets={"vertex": {...}})`) in place of each step's own, and forgets the others.

This runs before everything else that is target-specific (the driver's first phase), so the
validators, the capability check and the backend all see the step exactly as it runs on that
target, and no backend ever meets `Step.targets`.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipec.ir import rewrite
from pipec.ir.model import Node, Pipeline, Step


def for_target(pipeline: Pipeline, target: str) -> Pipeline:
    """`pipeline` as `target` sees it: each step with `target`'s options, and no `targets`."""

    def resolve(node: Node) -> Sequence[Node]:
        if not isinstance(node, Step) or not node.targets:
            return (node,)
        record = node.targets.get(target)
        update = dict(record) if record is not None else {}
        return (node.model_copy(update={**update, "targets": {}}),)

    return rewrite.map_nodes(pipeline, resolve)
