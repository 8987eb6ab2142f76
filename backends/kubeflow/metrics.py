"""Which steps get a KFP `system.Metrics` output: the ones whose function calls `log_metric`.

On kubeflow and vertex a step's `pipec.context().log_metric(...)` values are also listed as the
metadata of a `system.Metrics` artifact output (`components.METRICS_OUTPUT`), the form KFP's UI
shows as scalar metrics. Every component could carry one, but most steps never log a metric, and
an empty Metrics artifact per task clutters the run's graph and its artifact list in KFP's UI
(and costs each such step the executor input on its command line). So the compiler reads the
step function's own source: a call spelled `log_metric(...)` (`pipec.context().log_metric`,
`ctx.log_metric`, or a bare name) in the function body gives the step the output.

A metric logged only from a helper the step calls is not seen here: it still reaches the step's
log (every engine keeps it), and docs/targets/kubeflow.md says to call `log_metric` in the step
itself for the UI.
"""

from __future__ import annotations

import ast
from pathlib import Path

from pipec.ir.model import Component

CALL = "log_metric"


def logs_metrics(component: Component, project_root: Path) -> bool:
    """Whether the step function's own source calls `log_metric` (False when its file cannot be
    read or holds no such top-level function: a fused chain, a generated step)."""
    try:
        source = (project_root / component.file).read_text(encoding="utf-8")
        tree = ast.parse(source)
    except (OSError, SyntaxError, ValueError):
        return False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
            node.name == component.function
        ):
            return any(_is_call(inner) for inner in ast.walk(node))
    return False


def _is_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    called = node.func
    if isinstance(called, ast.Attribute):
        return called.attr == CALL
    return isinstance(called, ast.Name) and called.id == CALL
