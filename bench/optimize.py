"""Fused vs not, side by side: a 100-step chain and a 20-wide sweep on every target that runs here.

For each target registered in this install that can run on this machine, each pipeline runs with
`--set fuse=false` and `--set fuse=true`, in turn (A B A B ..., so drift in the machine's speed
hits both alike), caching off where the target has a cache. Printed per target, pipeline and
mode: the tasks the engine starts (step runs, counted on the compiled pipeline as `pipec explain`
counts them) and the median wall time of the whole `pipec run` command, then fused/unfused.

* `local`: always (the fork executor: a task costs a fork, so fusion gains little here).
* `github`: under act in host mode (`--set via=act`) when the target is registered and act is
  found (the github tool environment's, or on PATH). A job costs an interpreter and pipec import
  on act, a runner and a checkout on GitHub.
* `kubernetes`: against the stand-in API server of the kubernetes tests (tests/k8s_standin: a
  stand-in, not Kubernetes; each pod is a Docker container) when the target is registered, the
  stand-in is in this checkout and Docker runs. The scheduler runs here (`driver=local`) and
  creates one Job per step attempt; the image is the conformance suite's (the kubernetes test
  image plus the bench's project at /project). The Jobs each run made are counted on the
  stand-in and shown beside the compiled task count: they must agree.

A target that cannot run is listed with the reason. `--targets` picks some.

    .venv/bin/python bench/optimize.py [--repeat 3] [--targets local,github,kubernetes]
        [--chain 100] [--width 20] [--no-warm-up]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

PIPEC = Path(sys.executable).with_name("pipec")
REPO = Path(__file__).resolve().parent.parent

PIPELINES = {
    "chain": """\
from pipec import pipeline, step


@step
def inc(x: int) -> int:
    return x + 1


@pipeline
def chain() -> None:
    x = inc(0)
    for _ in range({chain} - 1):
        x = inc(x)
""",
    "sweep": """\
from pipec import collect, foreach, pipeline, step


@step
def scale(x: float, factor: float) -> float:
    return x * factor


@step
def square(x: float) -> float:
    return x * x


@step
def total(values: list[float]) -> float:
    return round(sum(values), 6)


@pipeline
def sweep(factor: float = 2.0) -> None:
    with foreach([float(i) for i in range({width})]) as x:
        m = square(x=scale(x=x, factor=factor))
    total(values=collect(m))
""",
}


@dataclass
class Target:
    """How to run the bench's pipelines on one target: extra `pipec run` arguments and env."""

    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cache: bool = True  # whether to pass --no-cache
    jobs: Callable[[str], int] | None = None
    """Run id -> the tasks the engine made for it, counted on the engine (kubernetes: Jobs)."""


Setup = Callable[[Path, contextlib.ExitStack], "Target | str"]


def _local(root: Path, stack: contextlib.ExitStack) -> Target | str:
    return Target("local", ["--target", "local"])


def _github(root: Path, stack: contextlib.ExitStack) -> Target | str:
    act = REPO / ".venvs" / "github" / "bin" / "act"
    found = str(act) if act.is_file() else shutil.which("act")
    if not found:
        return "act not found (bash .ci/toolenv github)"
    args = ["--target", "github", "--set", "via=act", "--set", f"act={found}"]
    return Target("github", args, cache=False)  # act runs every job: no cache to turn off


def _kubernetes(root: Path, stack: contextlib.ExitStack) -> Target | str:
    if not (REPO / "tests" / "k8s_standin" / "harness.py").is_file():
        return "the stand-in (tests/k8s_standin) is not in this checkout"
    if shutil.which("docker") is None:
        return "Docker is not installed"
    python = REPO / ".venvs" / "kubernetes" / "bin" / "python"
    if not python.is_file():
        return "the kubernetes tool environment is missing (bash .ci/toolenv kubernetes)"
    sys.path.insert(0, str(REPO))
    # The conformance suite's kubernetes adapter and the stand-in's harness: one way to build
    # the step image and start the server, shared with the tests.
    from tests.conformance import images  # type: ignore[import-not-found]
    from tests.conformance.adapters import kubernetes as adapter  # type: ignore[import-not-found]
    from tests.k8s_standin.harness import start_standin  # type: ignore[import-not-found]

    image = adapter.project_image(root)
    stack.callback(images.remove_image, image)
    started = start_standin(python, root.parent / "standin", {adapter.IMAGE: image})
    standin = next(started)
    stack.callback(lambda: next(started, None))  # the generator stops the server at its end
    settings = [
        *adapter.KubernetesHarness.settings,
        f"namespace={adapter.NAMESPACE}",
        "driver=local",
        f"volume_path={standin.pvc}",
        f"code_root={adapter.PROJECT_IN_IMAGE}",
        "poll_interval=0.5",
    ]
    args = ["--target", "kubernetes", *(a for s in settings for a in ("--set", s))]

    def jobs(run_id: str) -> int:
        path = f"/apis/batch/v1/namespaces/{adapter.NAMESPACE}/jobs"
        selector = f"pipec.dev/run={run_id},app.kubernetes.io/component=step"
        return len(standin.objects(path, selector))

    # driver=local keeps a cache like the local target's: --no-cache.
    return Target("kubernetes", args, env=standin.env(), jobs=jobs)


SETUPS: dict[str, Setup] = {"local": _local, "github": _github, "kubernetes": _kubernetes}


def _tasks(root: Path, pipeline: str, target: Target, fuse: bool) -> int:
    """Step runs of the compiled pipeline (what `pipec explain` counts)."""
    from pipec import driver
    from pipec.explain import count_tasks

    settings = [s for s in target.args if "=" in s] + [f"fuse={str(fuse).lower()}"]
    compiled = driver.prepare(str(root / f"{pipeline}.py"), target.name, settings)
    return count_tasks(compiled.pipeline).tasks


def _wall(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """The wall time of `command` and its run id (from `--json`)."""
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, check=False, env=env or None
    )
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    run_id: str = json.loads(done.stdout.strip().splitlines()[-1])["run_id"]
    return took, run_id


@contextlib.contextmanager
def _project(chain: int, width: int) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pipec-bench-") as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        (root / "pyproject.toml").write_text('[project]\nname = "bench"\n', encoding="utf-8")
        for name, source in PIPELINES.items():
            text = source.replace("{chain}", str(chain)).replace("{width}", str(width))
            (root / f"{name}.py").write_text(text, encoding="utf-8")
        yield root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--targets", default=",".join(SETUPS))
    parser.add_argument("--chain", type=int, default=100, help="steps in the chain")
    parser.add_argument("--width", type=int, default=20, help="items in the sweep")
    parser.add_argument(
        "--no-warm-up",
        dest="warm_up",
        action="store_false",
        help="skip the untimed first run of each mode (kubernetes: its images are built before)",
    )
    args = parser.parse_args()
    from pipec import backends

    registered = set(backends.available())
    console = Console()
    table = Table(title=f"fused vs not, {args.repeat} runs each (median \\[min-max] seconds)")
    columns = ("target", "pipeline", "tasks", "jobs", "fuse=false", "tasks", "jobs", "fuse=true")
    for column in (*columns, "ratio"):
        table.add_column(column)
    skipped: list[str] = []
    with _project(args.chain, args.width) as root, contextlib.ExitStack() as stack:
        for name in args.targets.split(","):
            if name not in registered:
                skipped.append(f"{name}: not a registered target in this install")
                continue
            target = SETUPS[name](root, stack)
            if isinstance(target, str):
                skipped.append(f"{name}: {target}")
                continue
            for pipeline in PIPELINES:
                label = f"{pipeline} {args.chain if pipeline == 'chain' else args.width}"
                table.add_row(*_measure(root, pipeline, target, args.repeat, label, args.warm_up))
    console.print(table)
    for line in skipped:
        console.print(f"skipped {line}", markup=False)


def _measure(
    root: Path, pipeline: str, target: Target, repeat: int, label: str, warm_up: bool
) -> list[str]:
    base = [str(PIPEC), "run", f"{pipeline}.py", "--json", "--view", "quiet", *target.args]
    if target.cache:
        base.append("--no-cache")
    commands = {fuse: [*base, "--set", f"fuse={str(fuse).lower()}"] for fuse in (False, True)}
    for command in commands.values() if warm_up else ():
        _wall(command, root, target.env)  # warm-up: bytecode, images, the metadata file
    times: dict[bool, list[float]] = {False: [], True: []}
    jobs: dict[bool, set[int]] = {False: set(), True: set()}
    for _ in range(repeat):
        for fuse, command in commands.items():
            took, run_id = _wall(command, root, target.env)
            times[fuse].append(took)
            if target.jobs is not None:
                jobs[fuse].add(target.jobs(run_id))
    cells = [target.name, label]
    for fuse in (False, True):
        median = statistics.median(times[fuse])
        tasks = _tasks(root, pipeline, target, fuse)
        counted = "-" if target.jobs is None else ",".join(map(str, sorted(jobs[fuse])))
        if target.jobs is not None and jobs[fuse] != {tasks}:
            raise SystemExit(f"{target.name} {label}: {counted} Jobs per run, {tasks} tasks")
        cells += [
            str(tasks),
            counted,
            f"{median:.2f} [{min(times[fuse]):.2f}-{max(times[fuse]):.2f}]",
        ]
    ratios = [f / u for f, u in zip(times[True], times[False], strict=True)]
    cells.append(f"{statistics.median(ratios):.2f}x")
    return cells


if __name__ == "__main__":
    main()
