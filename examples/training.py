"""Every authoring feature in one pipeline: outputs, NamedTuples, options, resources, conditions,
a foreach with fan-in, ordering without data, and a schedule.

    pipec run examples/training.py
    pipec compile examples/training.py --target kubeflow -o out/
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from pipec import Resources, collect, foreach, otherwise, pipeline, step, when


class Split(NamedTuple):
    train: list[float]
    test: list[float]


@step
def load(n: int = 100) -> list[float]:
    """A deterministic toy data set: n points on a curve."""
    return [round((i * 37 % 101) / 101, 6) for i in range(n)]


@step(retries=2, timeout="10m")
def split(data: list[float], ratio: float = 0.8) -> Split:
    cut = int(len(data) * ratio)
    return Split(train=data[:cut], test=data[cut:])


@step(
    image="ghcr.io/acme/train:1.4",
    resources=Resources(cpu=4, memory="16Gi", gpu=1, gpu_type="nvidia-l4"),
)
def train(train: list[float], lr: float) -> bytes:
    """'Train' a model: the model is the learning rate and the data's mean, as bytes."""
    mean = sum(train) / len(train)
    return f"{lr}:{mean:.6f}".encode()


@step
def evaluate(model: bytes, test: list[float]) -> float:
    lr, mean = (float(x) for x in model.decode().split(":"))
    spread = sum(abs(x - mean) for x in test) / len(test)
    return round(1.0 - spread * lr, 6)


@step(cache=False, secrets=["REGISTRY_TOKEN"], env={"STAGE": "prod"})
def deploy(model: bytes) -> None:
    print("deploying model", hashlib.sha256(model).hexdigest()[:12])


@step
def notify(score: float) -> None:
    print(f"score {score} is too low to deploy")


@step
def best(scores: list[float]) -> float:
    return max(scores)


@step
def cleanup() -> None:
    print("cleaning up")


@pipeline(name="training", schedule="0 3 * * *")
def training(n: int = 100, lr: float = 0.01, lrs: list[float] = [0.1, 0.01]) -> None:  # noqa: B006
    """Train, evaluate, deploy when good enough, and sweep learning rates."""
    parts = split(load(n=n))
    model = train(parts.train, lr=lr)
    score = evaluate(model, parts.test)
    with when(score > 0.9):
        deploy(model)
    with otherwise():
        notify(score)
    with foreach(lrs, parallelism=2) as x:
        s = evaluate(train(parts.train, lr=x), parts.test)
    best(collect(s))
    cleanup().after(model)


if __name__ == "__main__":
    training()
