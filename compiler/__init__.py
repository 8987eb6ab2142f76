"""pipec: write an ML pipeline once in Python, compile it for the engine you run on.

Only re-exports live here so that `import pipec.ir` stays cheap.
"""

from typing import TYPE_CHECKING, Any

from pipec.dsl import (
    PipelineFunction,
    StepFunction,
    collect,
    foreach,
    otherwise,
    pipeline,
    step,
    when,
)
from pipec.step_options import Resources

if TYPE_CHECKING:
    from pipec.backends.runtime.context import StepContext
    from pipec.backends.runtime.context import current as context
    from pipec.backends.runtime.materializers import Materializer
    from pipec.backends.runtime.materializers import register as materializer


def __getattr__(name: str) -> Any:
    # The materializer and context APIs live in the step runtime; importing it only when used keeps
    # `import pipec` (every step module does it) as cheap as before.
    if name in ("Materializer", "materializer"):
        from pipec.backends.runtime import materializers

        return materializers.Materializer if name == "Materializer" else materializers.register
    if name in ("context", "StepContext"):
        from pipec.backends.runtime import context

        return context.current if name == "context" else context.StepContext
    if name == "runs":  # `pipec.runs.get(run_id)` without importing pipec.runs first
        import importlib

        return importlib.import_module("pipec.runs")
    raise AttributeError(f"module 'pipec' has no attribute {name!r}")

__all__ = [
    "Materializer",
    "PipelineFunction",
    "Resources",
    "StepContext",
    "StepFunction",
    "collect",
    "context",
    "foreach",
    "materializer",
    "otherwise",
    "pipeline",
    "step",
    "when",
]
