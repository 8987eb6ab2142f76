"""pipec: write an ML pipeline once in Python, compile it for the engine you run on.

Only re-exports live here so that `import pipec.ir` stays cheap.
"""

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

__all__ = [
    "PipelineFunction",
    "Resources",
    "StepFunction",
    "collect",
    "foreach",
    "otherwise",
    "pipeline",
    "step",
    "when",
]
