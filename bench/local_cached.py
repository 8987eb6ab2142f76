"""A fully cached re-run of a 1,000-step pipeline on the local target (goal: under 2 s).

Builds a pipeline of 10 independent chains of 100 trivial steps as an IR file, runs it once to
fill the cache, then times `pipec run` again end to end (every step cached) and reports the
runner's own time for the re-run.

`--history N` first gives the project's metadata store the history of N earlier fully cached
re-runs (their rows copied from the first run, as each real re-run adds them), so the re-run
shows what a long history costs. `--keep DIR` builds the project in DIR and leaves it there, to
time more re-runs from outside (`pipec run DIR/pipeline.json --view quiet`).

    .venv/bin/python bench/local_cached.py [--chains 10] [--length 100] [--history 0] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pipec.ir.code import recompute
from pipec.ir.model import Component, Location, OutputRef, Pipeline, Port, Step
from pipec.ir.serde import to_json

PIPEC = Path(sys.executable).with_name("pipec")
STEP_CODE = """\
def inc(x: int = 0) -> int:
    return x + 1
"""


def build(chains: int, length: int, code_hash: str) -> Pipeline:
    where = Location(file="cachemod.py", line=1)
    component = Component(
        id="inc",
        module="cachemod",
        function="inc",
        file="cachemod.py",
        code_hash=code_hash,
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


# Columns every version of the store has (the history is written the same way for each).
RUN_COLUMNS = "pipeline_id, pipeline_name, status, started_at, ended_at, params, plan, " + (
    "project_root, artifact_root"
)
STEP_COLUMNS = "step_id, iteration, name, reason, started_at, ended_at, attempts, " + (
    "cache_key, cache_parts, log_path"
)
ARTIFACT_COLUMNS = "step_id, iteration, output, uri, hash, type, materializer, value"


def add_history(root: Path, first_run: str, runs: int) -> None:
    """Copy the first run's rows as `runs` fully cached re-runs (cached from the first run),
    each a second later than the one before."""
    db = sqlite3.connect(root / ".pipec" / "metadata.db")
    with db:
        for n in range(1, runs + 1):
            run_id = f"history-{n:06d}"
            db.execute(
                f"INSERT INTO runs (run_id, {RUN_COLUMNS}) SELECT ?, {RUN_COLUMNS} FROM runs "
                "WHERE run_id=?",
                (run_id, first_run),
            )
            db.execute(
                f"INSERT INTO steps (run_id, status, cached_from, {STEP_COLUMNS}) "
                f"SELECT ?, 'cached', run_id, {STEP_COLUMNS} FROM steps WHERE run_id=?",
                (run_id, first_run),
            )
            db.execute(
                "UPDATE steps SET started_at=started_at+?, ended_at=ended_at+? WHERE run_id=?",
                (n, n, run_id),
            )
            db.execute(
                f"INSERT INTO artifacts (run_id, {ARTIFACT_COLUMNS}) SELECT ?, {ARTIFACT_COLUMNS} "
                "FROM artifacts WHERE run_id=?",
                (run_id, first_run),
            )
    db.execute("VACUUM")
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=10)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--history", type=int, default=0, help="earlier cached re-runs")
    parser.add_argument("--keep", type=Path, help="build the project here and keep it")
    args = parser.parse_args()
    total = args.chains * args.length
    with tempfile.TemporaryDirectory(prefix="pipec-cached-") as tmp:
        root = args.keep.resolve() if args.keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        (root / "pyproject.toml").write_text('[project]\nname = "cached"\n')
        (root / "cachemod.py").write_text(STEP_CODE)
        # The IR records the code hash of the code that will run (pipec checks it, F021).
        found = recompute("cachemod", "inc", str(root))
        assert found is not None
        pipeline = build(args.chains, args.length, found.digest)
        (root / "pipeline.json").write_text(to_json(pipeline))
        first_wall, first = _run(root)
        if args.history:
            add_history(root, str(first["run_id"]), args.history)
        second_wall, second = _run(root)
    steps = second["steps"]
    assert isinstance(steps, list) and len(steps) == total
    cached = sum(1 for s in steps if s["status"] == "cached")
    history = f", {args.history} earlier re-runs in the store" if args.history else ""
    table = Table(title=f"{total}-step pipeline ({args.chains} chains x {args.length}){history}")
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
