"""Comparing what optimized and unoptimized runs stored, step by step.

A run's outputs are `step[/i...]/output` -> content hash (`tests.airflow_helpers.stored_outputs`).
After the optimizer some steps are gone: a merged step's outputs are its keeper's, and a fused
chain stores each member's output under the fused step as `<fused>/<port>`. `as_written` maps an
optimized run's outputs back to the steps as the user wrote them, so the two runs compare whole.
"""

from __future__ import annotations

from pipec.backends.runtime import chain
from pipec.ir import graph
from pipec.ir.model import Const, Pipeline
from pipec.ir.passes import Rewrite


def fused_ports(pipeline: Pipeline) -> dict[tuple[str, str], tuple[str, str]]:
    """(fused step, port) -> (member step, output) for every fused step of `pipeline`."""
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for step in graph.steps(pipeline):
        spec = step.args.get(chain.SPEC_INPUT)
        if not (isinstance(spec, Const) and isinstance(spec.value, dict)):
            continue
        for member in spec.value["steps"]:  # type: ignore[union-attr]
            for output, port in member["outputs"].items():
                found[(step.id, port)] = (member["id"], output)
    return found


def as_written(
    outputs: dict[str, str], pipeline: Pipeline, rewrites: list[Rewrite]
) -> dict[str, str]:
    """An optimized run's outputs keyed by the steps as written (see the module docstring)."""
    ports = fused_ports(pipeline)
    found: dict[str, str] = {}
    for key, digest in outputs.items():
        step, *iteration, output = key.split("/")
        step, output = ports.get((step, output), (step, output))
        found["/".join([step, *iteration, output])] = digest
    for rewrite in rewrites:
        if rewrite.rule != "cse":
            continue
        keeper, gone = rewrite.steps
        for key, digest in list(found.items()):
            step, _, rest = key.partition("/")
            if step == keeper:
                found[f"{gone}/{rest}"] = digest
    return found
