"""A type of the project's own, stored by a materializer of the project's own.

    pipec run examples/vocabulary.py --param text="to be or not to be"

`Vocabulary` is not JSON and should not be pickled (a pickle ties the artifact to this class's
code forever); `VocabularyLines` stores it as a plain text file any tool can read. pipec picks it
from the step's annotation (`-> Vocabulary`), records its name in the output's meta.json, and the
consuming step, wherever it runs, loads the value with the same materializer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pipec
from pipec import pipeline, step


@dataclass(frozen=True)
class Vocabulary:
    words: tuple[str, ...]


@pipec.materializer(Vocabulary)
class VocabularyLines(pipec.Materializer):
    """One word per line in `words.txt`; the count goes into meta.json."""

    def save(self, value: Any, directory: Path) -> dict[str, Any]:
        (directory / "words.txt").write_text("\n".join(value.words) + "\n", encoding="utf-8")
        return {"count": len(value.words)}

    def load(self, directory: Path, meta: dict[str, Any]) -> Any:
        lines = (directory / "words.txt").read_text(encoding="utf-8").splitlines()
        return Vocabulary(tuple(lines))


@step
def build(text: str) -> Vocabulary:
    return Vocabulary(tuple(sorted(set(text.lower().split()))))


@step
def size(vocabulary: Vocabulary) -> int:
    assert isinstance(vocabulary, Vocabulary), type(vocabulary)
    return len(vocabulary.words)


@pipeline
def vocabulary(text: str = "the quick brown fox jumps over the lazy dog") -> None:
    size(build(text))


if __name__ == "__main__":
    vocabulary()
