"""Scheduling quality of the local target: random DAGs of steps that sleep known times.

For each DAG, prints the makespan of the run next to the lower bound
max(critical path, total work / parallelism), and their ratio (goal: within 10%). Each DAG is run
twice with caching off: first with no history (priorities count steps), then with the durations
measured by the first run (priorities weigh the remaining path by time).

    .venv/bin/python bench/local_schedule.py [--steps 40] [--parallelism 4] [--seeds 3]
"""

from __future__ import annotations

import argparse
import heapq
import random
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pipec.backends.base import RunOptions
from pipec.backends.local import LocalBackend, LocalSettings
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


def ideal_makespan(
    durations: dict[str, float], deps: dict[str, list[str]], width: int, known: bool
) -> float:
    """The same list scheduler (longest remaining path first) simulated with no overhead at all:
    weighted by the true durations (`known`) or by step counts (a first run). It shows how much
    of the gap to the bound is the bound itself (often unattainable) and how much is the runner."""
    children: dict[str, list[str]] = {s: [] for s in durations}
    for step_id, needed in deps.items():
        for d in needed:
            children[d].append(step_id)
    remaining: dict[str, float] = {}
    for step_id in sorted(durations, reverse=True):  # ids are in topological order
        weight = durations[step_id] if known else 1.0
        remaining[step_id] = weight + max((remaining[c] for c in children[step_id]), default=0)
    waiting = {s: len(deps[s]) for s in durations}
    ready = [(-remaining[s], s) for s in durations if waiting[s] == 0]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []
    now = 0.0
    while ready or running:
        while ready and len(running) < width:
            _, step_id = heapq.heappop(ready)
            heapq.heappush(running, (now + durations[step_id], step_id))
        now, step_id = heapq.heappop(running)
        for child in children[step_id]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (-remaining[child], child))
    return now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    table = Table(title=f"random DAGs, {args.steps} sleeping steps, parallelism {args.parallelism}")
    columns = ("dag", "run", "critical path", "work / par.", "bound", "makespan", "ratio", "ideal")
    for column in columns:
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory(prefix="pipec-sched-") as tmp:
        root = Path(tmp)
        (root / "pyproject.toml").write_text('[project]\nname = "sched"\n')
        (root / "schedmod.py").write_text(WORK)
        settings = LocalSettings(parallelism=args.parallelism, cpus=float(args.parallelism))
        backend = LocalBackend(settings, root)
        options = RunOptions(no_cache=True, view="quiet")
        for seed in range(args.seeds):
            pipeline, durations, deps = random_dag(args.steps, seed)
            critical = lower_bound(durations, deps, 10**9)
            spread = sum(durations.values()) / args.parallelism
            bound = max(critical, spread)
            for label, known in (("no history", False), ("learned", True)):
                result = backend.run(pipeline, {}, options).result
                assert result is not None and result.ok, result
                makespan = result.duration or 0.0
                ideal = ideal_makespan(durations, deps, args.parallelism, known)
                table.add_row(
                    str(seed), label, f"{critical:.2f}", f"{spread:.2f}", f"{bound:.2f}",
                    f"{makespan:.2f}", f"{makespan / bound:.3f}", f"{ideal / bound:.3f}",
                )  # fmt: skip
    Console().print(table)
    Console().print("goal: ratio <= 1.10 (makespan within 10% of the bound)")
    Console().print(
        "ideal: the same scheduler simulated with zero overhead (true durations once learned);"
        " ratio - ideal is what the runner itself costs"
    )


if __name__ == "__main__":
    main()
