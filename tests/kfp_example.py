"""The pipeline the kubeflow tests run for real under kfp.local (DockerRunner): a foreach with
parallelism over a parameter, a chain of steps inside the loop, a fan-in of the loop's results,
and a when/otherwise on a bool output.

Why not one of examples/: kfp.local 2.17 replaces *every* input of a loop task that comes from a
task output with the loop item, so a loop body that reads an upstream step's output (as iris,
training and nested do) cannot run under kfp.local, although the spec is what KFP itself emits.
This pipeline's loop reads only its item and parameters. kfp.local also only sees output artifacts
that a task lists in KFP's executor-output file (which the KFP Python executor writes and a plain
container does not), so the values here are all parameters. Its results are compared with the
local target's.
"""

from __future__ import annotations

from pipec import collect, foreach, otherwise, pipeline, step, when


@step
def scale(x: float, factor: float) -> float:
    return x * factor


@step
def square(x: float) -> float:
    return x * x


@step
def total(values: list[float]) -> float:
    return round(sum(values), 6)


@step
def is_big(value: float, threshold: float) -> bool:
    return value > threshold


@step
def high(value: float) -> dict[str, float]:
    return {"high": value}


@step
def low(value: float) -> dict[str, float]:
    return {"low": value}


@pipeline(name="kfp-fan-in")
def fan_in(
    xs: list[float] = [1.0, 2.0, 3.0],  # noqa: B006
    factor: float = 2.0,
    threshold: float = 20.0,
) -> None:
    """Scale and square every x, sum the squares, and branch on the sum."""
    with foreach(xs, parallelism=2) as x:
        m = square(x=scale(x=x, factor=factor))
    t = total(values=collect(m))
    with when(is_big(value=t, threshold=threshold)):
        high(value=t)
    with otherwise():
        low(value=t)
