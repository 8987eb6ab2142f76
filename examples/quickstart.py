"""A quickstart in the style of ZenML's: load a table, split it, scale it with numpy, train a
scikit-learn classifier, evaluate it, and promote the model when it is good enough. The tables
travel between steps as pandas DataFrames and the model as a fitted estimator (artifacts, written
by materializers); only the metrics are small values. Runs in seconds:

    pipec run examples/quickstart.py
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from pipec import otherwise, pipeline, step, when


class Splits(NamedTuple):
    train: pd.DataFrame
    test: pd.DataFrame


class Metrics(NamedTuple):
    accuracy: float
    f1: float


@step
def load_wine() -> pd.DataFrame:
    """scikit-learn's wine data set (178 rows, 13 measurements and a `target` class)."""
    from sklearn.datasets import load_wine as sklearn_wine

    frame: pd.DataFrame = sklearn_wine(as_frame=True).frame
    return frame


@step
def split(data: pd.DataFrame, test_size: float = 0.25, seed: int = 42) -> Splits:
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        data, test_size=test_size, random_state=seed, stratify=data["target"]
    )
    return Splits(train.reset_index(drop=True), test.reset_index(drop=True))


@step
def standardize(train: pd.DataFrame, test: pd.DataFrame) -> Splits:
    """Scale every feature by the training set's mean and spread (numpy), both tables alike."""
    features = [c for c in train.columns if c != "target"]
    values = train[features].to_numpy()
    mean, std = values.mean(axis=0), values.std(axis=0)
    spread = np.where(std > 0, std, 1.0)  # a constant column stays as it is

    def scaled(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        out[features] = (frame[features].to_numpy() - mean) / spread
        return out

    return Splits(scaled(train), scaled(test))


@step
def train(data: pd.DataFrame, c: float = 1.0) -> LogisticRegression:
    model = LogisticRegression(C=c, max_iter=1000)
    return model.fit(data.drop(columns="target"), data["target"])


@step
def evaluate(model: LogisticRegression, data: pd.DataFrame) -> Metrics:
    from sklearn.metrics import accuracy_score, f1_score

    predicted = model.predict(data.drop(columns="target"))
    return Metrics(
        accuracy=round(float(accuracy_score(data["target"], predicted)), 4),
        f1=round(float(f1_score(data["target"], predicted, average="macro")), 4),
    )


@step
def promote(model: LogisticRegression, accuracy: float) -> str:
    """The model card a registry would keep (nothing is written outside the run)."""
    return f"wine-logreg C={model.C} classes={len(model.classes_)} accuracy={accuracy}"


@step
def hold_back(accuracy: float, bar: float) -> str:
    return f"accuracy {accuracy} is below {bar}; the model stays unpromoted"


@pipeline(name="quickstart")
def quickstart(c: float = 1.0, min_accuracy: float = 0.9) -> None:
    """Load, split, standardize, train, evaluate, and promote the model when it is good enough."""
    splits = split(load_wine())
    scaled = standardize(train=splits.train, test=splits.test)
    model = train(scaled.train, c=c)
    metrics = evaluate(model, scaled.test)
    with when(metrics.accuracy >= min_accuracy):
        promote(model, accuracy=metrics.accuracy)
    with otherwise():
        hold_back(accuracy=metrics.accuracy, bar=min_accuracy)


if __name__ == "__main__":
    quickstart()
