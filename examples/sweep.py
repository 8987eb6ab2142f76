"""A parameter sweep: scale and square every x in parallel (at most two at a time), sum the
squares (fan-in), and branch on whether the sum is big. Every value is a parameter-sized number,
so it runs the same on every engine, kfp.local included (the kubeflow tests run it there):

    pipec run examples/sweep.py --param xs='[1, 2, 3, 4]'
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


@pipeline(name="sweep")
def sweep(
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


if __name__ == "__main__":
    sweep()
