"""pipec: write an ML pipeline once in Python, compile it for the engine you run on.

Only re-exports live here, each loaded on first use (PEP 562), so that `import pipec.ir` and the
step runtime (`python -m pipec.backends.runtime` imports this package first) stay cheap.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipec.backends.runtime.context import StepContext
    from pipec.backends.runtime.context import current as context
    from pipec.backends.runtime.materializers import Materializer
    from pipec.backends.runtime.materializers import register as materializer
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


# The authoring API, by the module it lives in (step modules import it in every step's interpreter;
# its modules import the tracer and the IR models only when a pipeline is traced).
_AUTHORING = dict.fromkeys(
    ("PipelineFunction", "StepFunction", "collect", "foreach", "otherwise", "pipeline", "step"),
    "pipec.dsl",
) | {"when": "pipec.dsl", "Resources": "pipec.step_options"}


def __getattr__(name: str) -> Any:
    if name in _AUTHORING:
        value = getattr(importlib.import_module(_AUTHORING[name]), name)
        globals()[name] = value  # later lookups find it without coming here
        return value
    # The materializer and context APIs live in the step runtime; importing it only when used keeps
    # `import pipec` (every step module does it) cheap.
    if name in ("Materializer", "materializer"):
        from pipec.backends.runtime import materializers

        return materializers.Materializer if name == "Materializer" else materializers.register
    if name in ("context", "StepContext"):
        from pipec.backends.runtime import context

        return context.current if name == "context" else context.StepContext
    if name == "runs":  # `pipec.runs.get(run_id)` without importing pipec.runs first
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
