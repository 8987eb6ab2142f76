"""A hyper-parameter search in the style of a Kubeflow Pipelines sweep: fan out over model
families and, inside each, over regularisation strengths (a foreach inside a foreach); every fit
scores itself into a one-row DataFrame; each family's rows are collected into its leaderboard and
the leaderboards into the winner (two fan-ins of DataFrames). Small data, fast fits:

    pipec run examples/tuning.py --param families='["logistic", "tree"]'
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from pipec import collect, foreach, pipeline, step


class Winner(NamedTuple):
    family: str
    strength: float
    accuracy: float


@step
def make_data(rows: int = 240, seed: int = 7) -> pd.DataFrame:
    """A synthetic classification table (scikit-learn's make_classification), fixed by `seed`."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=rows, n_features=8, n_informative=5, random_state=seed
    )
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])]).round(6)
    frame["label"] = y
    return frame


def _estimator(family: str, strength: float) -> object:
    """One model of `family`; `strength` is its regularisation knob (bigger fits closer)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.tree import DecisionTreeClassifier

    if family == "logistic":
        return LogisticRegression(C=strength, max_iter=1000)
    if family == "tree":
        return DecisionTreeClassifier(max_depth=max(1, round(2 * strength)), random_state=0)
    if family == "knn":
        return KNeighborsClassifier(n_neighbors=max(1, round(12 / strength)))
    raise ValueError(f"unknown model family {family!r}")


@step(retries=1)
def score(data: pd.DataFrame, family: str, strength: float, folds: int = 3) -> pd.DataFrame:
    """Cross-validated accuracy of one (family, strength), as a one-row table."""
    from sklearn.model_selection import cross_val_score

    x, y = data.drop(columns="label"), data["label"]
    accuracy = cross_val_score(_estimator(family, strength), x, y, cv=folds).mean()
    return pd.DataFrame(
        {"family": [family], "strength": [strength], "accuracy": [round(float(accuracy), 4)]}
    )


@step
def leaderboard(rows: list[pd.DataFrame]) -> pd.DataFrame:
    """One family's rows, best first (ties: the weaker regularisation wins)."""
    board = pd.concat(rows, ignore_index=True)
    return board.sort_values(["accuracy", "strength"], ascending=[False, True]).reset_index(
        drop=True
    )


@step
def pick_winner(boards: list[pd.DataFrame]) -> Winner:
    """The best row over every family's leaderboard."""
    tops = pd.concat([board.head(1) for board in boards], ignore_index=True)
    best = tops.sort_values(["accuracy", "family"], ascending=[False, True]).iloc[0]
    return Winner(str(best["family"]), float(best["strength"]), float(best["accuracy"]))


@step
def announce(family: str, strength: float, accuracy: float) -> str:
    return f"winner: {family} (strength {strength}) with cross-validated accuracy {accuracy}"


@pipeline(name="tuning")
def tuning(
    families: list[str] = ["logistic", "tree", "knn"],  # noqa: B006
    strengths: list[float] = [0.5, 2.0],  # noqa: B006
    rows: int = 240,
) -> None:
    """Score every family at every strength; collect leaderboards; announce the winner."""
    data = make_data(rows=rows)
    with foreach(families) as family:
        with foreach(strengths, parallelism=2) as strength:
            row = score(data=data, family=family, strength=strength)
        board = leaderboard(rows=collect(row))
    winner = pick_winner(boards=collect(board))
    announce(family=winner.family, strength=winner.strength, accuracy=winner.accuracy)


if __name__ == "__main__":
    tuning()
