"""A fully cached re-run of a 1,000-step pipeline on the local target (goal: under 2 s).

Builds a pipeline of 10 independent chains of 100 trivial steps as an IR file, runs it once to
fill the cache, then times `pipec run` again end to end (every step cached) and reports the
runner's own time for the re-run.

    .venv/bin/python bench/local_cached.py [--chains 10] [--length 100]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pipec.ir.model import Component, Location, OutputRef, Pipeline, Port, Step
from pipec.ir.serde import to_json

PIPEC = Path(sys.executable).with_name("pipec")
STEP_CODE = """\
def inc(x: int = 0) -> int:
    return x + 1
"""


def build(chains: int, length: int) -> Pipeline:
    where = Location(file="cachemod.py", line=1)
    component = Component(
        id="inc",
        module="cachemod",
        function="inc",
        file="cachemod.py",
        code_hash="sha256:bench",
        inputs=(Port(name="x", type="int", required=False, default=0),),
        outputs=(Port(name="output", type="int"),),
    )
    body: list[Step] = []
    for c in range(chains):
        for i in range(length):
            args = {"x": OutputRef(step=f"c{c}_{i - 1}", output="output")} if i else {}
            body.append(
                Step(id=f"c{c}_{i}", name=f"c{c}_{i}", component="inc", args=args, location=where)
            )
    return Pipeline(
        name="cached", id="cached", components=(component,), body=tuple(body), location=where
    )


def _run(root: Path) -> tuple[float, dict[str, object]]:
    start = time.perf_counter()
    done = subprocess.run(
        [str(PIPEC), "run", "pipeline.json", "--json", "--view", "quiet"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"pipec run failed:\n{done.stdout}\n{done.stderr}")
    summary: dict[str, object] = json.loads(done.stdout)
    return seconds, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=10)
    parser.add_argument("--length", type=int, default=100)
    args = parser.parse_args()
    total = args.chains * args.length
    with tempfile.TemporaryDirectory(prefix="pipec-cached-") as tmp:
        root = Path(tmp)
        (root / "pyproject.toml").write_text('[project]\nname = "cached"\n')
        (root / "cachemod.py").write_text(STEP_CODE)
        (root / "pipeline.json").write_text(to_json(build(args.chains, args.length)))
        first_wall, first = _run(root)
        second_wall, second = _run(root)
    steps = second["steps"]
    assert isinstance(steps, list) and len(steps) == total
    cached = sum(1 for s in steps if s["status"] == "cached")
    table = Table(title=f"{total}-step pipeline ({args.chains} chains x {args.length})")
    for column in ("run", "end to end", "runner", "cached steps"):
        table.add_column(column, justify="right")
    first_steps = first["steps"]
    assert isinstance(first_steps, list)
    table.add_row(
        "first (executes)", f"{first_wall:.2f}s", f"{first['duration']:.2f}s",
        str(sum(1 for s in first_steps if s["status"] == "cached")),
    )  # fmt: skip
    table.add_row(
        "re-run (cached)", f"{second_wall:.2f}s", f"{second['duration']:.2f}s", str(cached)
    )
    console = Console()
    console.print(table)
    console.print(
        f"goal: fully cached re-run under 2 s -> {'met' if second_wall < 2 else 'NOT met'} "
        f"({second_wall:.2f}s end to end)"
    )


if __name__ == "__main__":
    main()
