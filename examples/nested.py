"""Nested pipelines, runtime fan-out over a step's output, an else-if chain and compound
conditions.

    pipec run examples/nested.py --param shards=4
"""

from __future__ import annotations

from pipec import collect, foreach, otherwise, pipeline, step, when


@step
def make_shards(shards: int) -> list[str]:
    return [f"shard-{i:02d}" for i in range(shards)]


@step
def count_words(shard: str) -> int:
    return len(shard) * 3


@step
def total(counts: list[int]) -> int:
    return sum(counts)


@step
def label(kind: str, value: int) -> str:
    return f"{kind}:{value}"


@step
def publish(message: str, strict: bool = False) -> None:
    print("publish", message, "strict" if strict else "")


@pipeline
def word_count(shards: int = 3) -> int:
    """A reusable sub-pipeline: fan out over shards known only at run time, then fan in."""
    names = make_shards(shards=shards)
    with foreach(names) as shard:
        n = count_words(shard=shard)
    return total(counts=collect(n))  # type: ignore[no-any-return]


@pipeline(name="nested-report")
def report(shards: int = 3, strict: bool = False, mode: str = "full") -> None:
    """Call the sub-pipeline twice and branch on its result."""
    first = word_count(shards=shards)
    second = word_count(shards=2)
    with when((first > 100) & ~(mode == "dry-run")):
        publish(message=label(kind="big", value=first), strict=strict)
    with otherwise():
        with when((second >= 20) | strict):
            publish(message=label(kind="medium", value=second))
        with otherwise():
            publish(message=label(kind="small", value=first))


if __name__ == "__main__":
    report()
