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

# A pipeline each target-neutral rule rewrites (fold: `variant(mode="fast")` decides its `when`;
# prune: the `foreach([])`; cse: the second `variant` call and the loop's calls repeat cacheable
# work; `publish` is cache=False and never merges), and which fuses where fusion is on. Used by
# the local runs here and by the conformance suite on every target.
OPTIMIZABLE = """
    @step
    def load(n: int) -> list[int]:
        return list(range(n))

    @step
    def scale(xs: list[int], factor: int) -> list[int]:
        return [x * factor for x in xs]

    @step
    def total(xs: list[int]) -> int:
        return sum(xs)

    @step
    def label(value: int, mode: str) -> str:
        return f"{mode}:{value}"

    @step(cache=False)
    def publish(message: str) -> None:
        print("publish", message)

    @pipeline
    def variant(n: int, mode: str) -> int:
        t = total(xs=scale(xs=load(n=n), factor=2))
        with when(mode == "slow"):
            publish(message=label(value=t, mode="slow"))
        with otherwise():
            publish(message=label(value=t, mode="fast"))
        return t

    @pipeline
    def optimizable(n: int = 4) -> None:
        first = variant(n=n, mode="fast")
        second = variant(n=n, mode="fast")
        with foreach([]) as x:
            label(value=x, mode="never")
        with foreach([1, 2, 3]) as k:
            got = total(xs=scale(xs=load(n=k), factor=3))
        total(xs=collect(got))
        label(value=first, mode="end").after(second)
"""


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
