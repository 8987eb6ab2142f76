"""A real scikit-learn pipeline on the iris data set that ships with scikit-learn:
load -> split -> train over a hyper-parameter sweep -> evaluate -> pick the best -> register it
when it is good enough. Runs in seconds on one machine:

    pipec run examples/iris.py
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, NamedTuple

from pipec import collect, foreach, otherwise, pipeline, step, when


class Dataset(NamedTuple):
    x_train: list[list[float]]
    x_test: list[list[float]]
    y_train: list[int]
    y_test: list[int]


class Choice(NamedTuple):
    c: float
    accuracy: float


@step
def load_iris() -> dict[str, Any]:
    """The iris measurements and labels, as plain lists (a value every engine can pass)."""
    from sklearn.datasets import load_iris as sklearn_iris

    data = sklearn_iris()
    return {"x": data.data.tolist(), "y": data.target.tolist()}


@step
def split(data: dict[str, Any], test_size: float = 0.3, seed: int = 0) -> Dataset:
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        data["x"], data["y"], test_size=test_size, random_state=seed, stratify=data["y"]
    )
    return Dataset(x_train, x_test, y_train, y_test)


@step
def train(x: list[list[float]], y: list[int], c: float) -> bytes:
    """A logistic regression with inverse regularisation strength `c`, pickled."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=500).fit(x, y)
    return pickle.dumps(model)


@step
def evaluate(model: bytes, x: list[list[float]], y: list[int], c: float) -> dict[str, float]:
    from sklearn.metrics import accuracy_score

    predictions = pickle.loads(model).predict(x)
    return {"c": c, "accuracy": round(float(accuracy_score(y, predictions)), 4)}


@step
def pick_best(results: list[dict[str, float]]) -> Choice:
    top = max(results, key=lambda r: (r["accuracy"], -r["c"]))
    return Choice(c=top["c"], accuracy=top["accuracy"])


@step
def register(c: float, accuracy: float, registry: str = ".pipec/registry") -> str:
    folder = Path(registry)
    folder.mkdir(parents=True, exist_ok=True)
    entry = folder / f"iris-logreg-C{c}.txt"
    entry.write_text(f"C={c} accuracy={accuracy}\n")
    return str(entry)


@step
def reject(accuracy: float) -> None:
    print(f"best accuracy {accuracy} is below the bar; nothing registered")


@pipeline(name="iris")
def iris(cs: list[float] = [0.01, 0.1, 1.0, 10.0], min_accuracy: float = 0.9) -> None:  # noqa: B006
    """Sweep the regularisation strength of a logistic regression on iris."""
    data = split(load_iris())
    with foreach(cs) as c:
        model = train(x=data.x_train, y=data.y_train, c=c)
        result = evaluate(model=model, x=data.x_test, y=data.y_test, c=c)
    choice = pick_best(collect(result))
    with when(choice.accuracy >= min_accuracy):
        register(c=choice.c, accuracy=choice.accuracy)
    with otherwise():
        reject(accuracy=choice.accuracy)


if __name__ == "__main__":
    iris()
