"""The cost of one GitHub Actions job per step: a 10-step chain under act vs the local target.

Runs `pipec run chain.py --no-cache` (local) and `pipec run chain.py --target github --set
via=act` in turn, A B A B ..., both in this process's environment, and prints the median wall
time of each whole command and the ratio act/local per pair (pairs hold when the machine's speed
drifts). act runs each job as a shell on this machine (host mode), so the gap is the per-job cost:
a fresh interpreter and pipec import per job plus act's scheduling; on GitHub itself each job
also gets a runner and a checkout. Fusing chains into one job (the optimizer issue) should cut it.

    .venv/bin/python bench/github_act.py [--steps 10] [--repeat 3] [--act PATH]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

PIPEC = Path(sys.executable).with_name("pipec")
REPO = Path(__file__).resolve().parent.parent

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


def _wall(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--act",
        default=str(REPO / ".venvs" / "github" / "bin" / "act"),
        help="the act executable (default: the github tool environment's)",
    )
    args = parser.parse_args()
    act = args.act if Path(args.act).is_file() else shutil.which("act")
    if not act:
        raise SystemExit("act not found: bash .ci/toolenv github, or --act PATH")
    with tempfile.TemporaryDirectory(prefix="pipec-bench-") as tmp:
        root = Path(tmp)
        (root / "pyproject.toml").write_text('[project]\nname = "bench"\n')
        (root / "chain.py").write_text(CHAIN.format(steps=args.steps))
        base = [str(PIPEC), "run", "chain.py", "--json", "--view", "quiet"]
        local_cmd = [*base, "--no-cache"]
        act_cmd = [*base, "--target", "github", "--set", "via=act", "--set", f"act={act}"]
        _wall(local_cmd, root)  # warm-up: bytecode caches, the first SQLite file
        _wall(act_cmd, root)
        local: list[float] = []
        under_act: list[float] = []
        for _ in range(args.repeat):
            local.append(_wall(local_cmd, root))
            under_act.append(_wall(act_cmd, root))
    ratios = [a / b for a, b in zip(under_act, local, strict=True)]
    table = Table(title=f"{args.steps}-step chain, {args.repeat} runs each (median \\[min-max])")
    for column in ("command", "wall seconds", "per step"):
        table.add_column(column)
    for name, times in (("local", local), ("github via act", under_act)):
        median = statistics.median(times)
        table.add_row(
            name,
            f"{median:.2f} [{min(times):.2f}-{max(times):.2f}]",
            f"{median / args.steps:.3f}",
        )
    console = Console()
    console.print(table)
    console.print(
        f"act / local: {statistics.median(ratios):.2f}x "
        f"[{min(ratios):.2f}-{max(ratios):.2f}] (pair by pair)"
    )


if __name__ == "__main__":
    main()
