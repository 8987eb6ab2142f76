"""Scheduling quality of the local target: random DAGs of steps that sleep known times.

For each DAG, prints the makespan of the run next to the lower bound
max(critical path, total work / parallelism), and their ratio (goal: within 10%). Each DAG is run
twice with caching off: first with no history (priorities count steps), then with the durations
measured by the first run (priorities weigh the remaining path by time).

    .venv/bin/python bench/local_schedule.py [--steps 40] [--parallelism 4] [--seeds 3]
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pipec.backends.local import LocalSettings
from pipec.backends.local_runner import run_pipeline
from pipec.ir.model import Component, Const, Location, Pipeline, Port, Step

WORK = """\
import time


def work(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
"""


def random_dag(steps: int, seed: int) -> tuple[Pipeline, dict[str, float], dict[str, list[str]]]:
    """A DAG where each step waits for up to three random earlier steps."""
    rng = random.Random(seed)
    where = Location(file="schedmod.py", line=1)
    component = Component(
        id="work",
        module="schedmod",
        function="work",
        file="schedmod.py",
        code_hash="sha256:bench",
        inputs=(Port(name="seconds", type="float"),),
        outputs=(Port(name="output", type="float"),),
    )
    body: list[Step] = []
    durations: dict[str, float] = {}
    deps: dict[str, list[str]] = {}
    for i in range(steps):
        step_id = f"s{i:03d}"
        durations[step_id] = round(rng.uniform(0.05, 0.5), 3)
        earlier = [s.id for s in body]
        deps[step_id] = sorted(rng.sample(earlier, k=min(len(earlier), rng.randint(0, 3))))
        body.append(
            Step(
                id=step_id,
                name=step_id,
                component="work",
                args={"seconds": Const(value=durations[step_id])},
                after=tuple(deps[step_id]),
                location=where,
            )
        )
    pipeline = Pipeline(
        name=f"dag{seed}",
        id=f"dag{seed}",
        components=(component,),
        body=tuple(body),
        location=where,
    )
    return pipeline, durations, deps


def lower_bound(durations: dict[str, float], deps: dict[str, list[str]], width: int) -> float:
    finish: dict[str, float] = {}
    for step_id in sorted(durations):
        finish[step_id] = durations[step_id] + max((finish[d] for d in deps[step_id]), default=0)
    return max(max(finish.values()), sum(durations.values()) / width)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    table = Table(title=f"random DAGs, {args.steps} sleeping steps, parallelism {args.parallelism}")
    for column in ("dag", "run", "critical path", "work / par.", "bound", "makespan", "ratio"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory(prefix="pipec-sched-") as tmp:
        root = Path(tmp)
        (root / "pyproject.toml").write_text('[project]\nname = "sched"\n')
        (root / "schedmod.py").write_text(WORK)
        settings = LocalSettings(parallelism=args.parallelism, cpus=float(args.parallelism))
        for seed in range(args.seeds):
            pipeline, durations, deps = random_dag(args.steps, seed)
            critical = lower_bound(durations, deps, 10**9)
            spread = sum(durations.values()) / args.parallelism
            bound = max(critical, spread)
            for label in ("no history", "learned"):
                result = run_pipeline(pipeline, settings, root=root, no_cache=True, view="quiet")
                assert result.ok, result.to_json()
                makespan = result.duration or 0.0
                table.add_row(
                    str(seed), label, f"{critical:.2f}", f"{spread:.2f}", f"{bound:.2f}",
                    f"{makespan:.2f}", f"{makespan / bound:.3f}",
                )  # fmt: skip
    Console().print(table)
    Console().print("goal: ratio <= 1.10 (makespan within 10% of the bound)")


if __name__ == "__main__":
    main()
