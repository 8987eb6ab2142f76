"""Per-step overhead of the local target: a 100-step chain of trivial steps.

Prints the end-to-end time of `pipec run` on the chain (interpreter start, tracing, checks and
the run, caching off), the runner's own time for the run, and `python -c pass` run 100 times
(what one fresh interpreter per step would cost at the very least), with the ratios.

    .venv/bin/python bench/local_overhead.py [--steps 100]
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

PIPEC = Path(sys.executable).with_name("pipec")

CHAIN = """\
from pipec import pipeline, step


@step
def inc(x: int) -> int:
    return x + 1


@pipeline
def chain() -> None:
    x = inc(0)
    for _ in range({steps} - 1):
        x = inc(x)
"""


def _seconds(command: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pipec-bench-") as tmp:
        root = Path(tmp)
        (root / "pyproject.toml").write_text('[project]\nname = "bench"\n')
        (root / "chain.py").write_text(CHAIN.format(steps=args.steps))
        command = [str(PIPEC), "run", "chain.py", "--no-cache", "--json", "--view", "quiet"]
        totals: list[float] = []
        runner: list[float] = []
        for _ in range(args.repeat):
            seconds, done = _seconds(command, root)
            if done.returncode != 0:
                raise SystemExit(f"pipec run failed:\n{done.stdout}\n{done.stderr}")
            summary = json.loads(done.stdout)
            assert len(summary["steps"]) == args.steps
            assert summary["steps"][-1]["outputs"] == {"output": args.steps}
            totals.append(seconds)
            runner.append(float(summary["duration"]))
        bare = 0.0
        for _ in range(args.steps):
            seconds, _ = _seconds([sys.executable, "-c", "pass"], root)
            bare += seconds
    best_total, best_runner = min(totals), min(runner)
    table = Table(title=f"{args.steps}-step chain of trivial steps (best of {args.repeat})")
    table.add_column("what")
    table.add_column("seconds", justify="right")
    table.add_column("per step", justify="right")
    rows = [
        ("pipec run, end to end", best_total),
        ("  of which the run itself", best_runner),
        (f"python -c pass x{args.steps}", bare),
    ]
    for label, seconds in rows:
        table.add_row(label, f"{seconds:.3f}", f"{1000 * seconds / args.steps:.1f} ms")
    console = Console()
    console.print(table)
    console.print(f"goal: end to end under 1.5 s -> {'met' if best_total < 1.5 else 'NOT met'}")
    console.print(f"ratio python -c pass x{args.steps} / pipec run: {bare / best_total:.1f}x")
    console.print(f"ratio python -c pass x{args.steps} / run itself: {bare / best_runner:.1f}x")


if __name__ == "__main__":
    main()
