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
    from pipec.backends.runtime.materializers import Materializer
    from pipec.backends.runtime.materializers import register as materializer


def __getattr__(name: str) -> Any:
    # The materializer API lives in the step runtime; importing it only when used keeps
    # `import pipec` (every step module does it) as cheap as before.
    if name in ("Materializer", "materializer"):
        from pipec.backends.runtime import materializers

        return materializers.Materializer if name == "Materializer" else materializers.register
    raise AttributeError(f"module 'pipec' has no attribute {name!r}")

__all__ = [
    "Materializer",
    "PipelineFunction",
    "Resources",
    "StepFunction",
    "collect",
    "foreach",
    "materializer",
    "otherwise",
    "pipeline",
    "step",
    "when",
]
