"""What `local_docker` adds to the engine's own container cost, and what its image reuse saves.

Side by side in one run, on the local Docker engine and the debootstrap image `.ci/docker` builds
(`pipec-base`), caching off, network none:

1. Warm: a 20-step chain of trivial steps, `pipec run --target local_docker` end to end (CLI
   start, tracing, image check, 20 containers), against 20 sequential bare
   `docker run --rm <the same image> python3 -c pass`. Alternating pairs; medians. Goal: <= 1.2x.
   A third row splits the difference: the same run with the step runtime replaced by
   `python3 -c pass` (an interpreter stand-in in a copy of the image, through the `python`
   setting; the steps return nothing, so there is nothing to write), i.e. what the runner and
   its executor cost apart from the Python work inside each step. (The launcher runs a step's
   runtime in a fork of its own interpreter; a stand-in in the interpreter's place is started
   as a program of its own, so this row still counts one `python3 -c pass` per step, and the
   launcher's import of the runtime before its request, which that program does not use.)
   The executor makes the next steps' containers ahead while a step runs, in every row of
   pipec's; the bare runs are one after the other, as a shell loop of `docker run` would be.
   With `--baseline PIPEC` (another installation's `pipec`, e.g. main's), a fourth row runs the
   same chain with it in the same rounds: a change's effect, measured side by side.
2. Cold: the first run of a project whose image does not exist yet (pipec builds it), then a
   second run after editing a step's code (pipec reuses the image: code is mounted), against a
   ZenML-style flow that rebuilds the same image before every run (measured: the images are
   removed and built again before its second run).

The cold part uses its own requirement list (the same packages, spelled differently) so that its
images are new, and removes them at the end; the images other projects use are not touched.

    .venv/bin/python bench/docker_overhead.py [--steps 20] [--pairs 3] [--no-cold]
        [--baseline OTHER/.venv/bin/pipec]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

PIPEC = Path(sys.executable).with_name("pipec")
BASE = "pipec-base"
CHAIN = """\
from pipec import pipeline, step


@step
def inc(x: int) -> int:
    return x + {delta}


@pipeline
def chain() -> None:
    x = inc(0)
    for _ in range({steps} - 1):
        x = inc(x)
"""
TICKS = """\
from pipec import pipeline, step


@step
def tick() -> None:
    pass


@pipeline
def ticks() -> None:
    t = tick()
    for _ in range({steps} - 1):
        t = tick().after(t)
"""
NOOP_PYTHON = """\
#!/bin/sh
# bench stand-in: the step runtime (`-m pipec.backends.runtime ...`) becomes an empty run
if [ "$1" = "-m" ]; then exec python3 -c pass; fi
exec python3 "$@"
"""
# The same packages as pipec's own requirements, spelled so that the recipe (and so the image
# tags) differ from every other project's: the cold runs really build.
COLD_REQUIREMENTS = '["fsspec>=2024.2.0"]'


def _timed(command: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, done


def _project(root: Path, steps: int, delta: int = 1) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text('[project]\nname = "bench"\n', encoding="utf-8")
    (root / "chain.py").write_text(CHAIN.format(steps=steps, delta=delta), encoding="utf-8")


def _run(
    root: Path, *settings: str, ref: str = "chain.py", pipec: Path = PIPEC
) -> tuple[float, dict[str, Any]]:
    command = [str(pipec), "run", ref, "--target", "local_docker", "--no-cache", "--json"]
    command += ["--view", "quiet", "--set", f"base_image={BASE}", "--set", "network=none"]
    for setting in settings:
        command += ["--set", setting]
    seconds, done = _timed(command, root)
    if done.returncode != 0:
        raise SystemExit(f"pipec run failed:\n{done.stdout}\n{done.stderr}")
    summary: dict[str, Any] = json.loads(done.stdout)
    return seconds, summary


def _noop_image(image: str, folder: Path) -> str:
    """A copy of `image` with the interpreter stand-in `pipec-noop-python`."""
    folder.mkdir()
    (folder / "pipec-noop-python").write_text(NOOP_PYTHON, encoding="utf-8")
    (folder / "pipec-noop-python").chmod(0o755)
    (folder / "Dockerfile").write_text(
        f"FROM {image}\nCOPY pipec-noop-python /usr/local/bin/pipec-noop-python\n",
        encoding="utf-8",
    )
    tag = "pipec-bench-noop:" + image.rsplit(":", 1)[-1]
    build = ["docker", "build", "-q", "--network", "none", "-t", tag, str(folder)]
    subprocess.run(build, check=True, capture_output=True)
    return tag


def warm(
    steps: int, pairs: int, baseline: Path | None = None
) -> tuple[dict[str, list[float]], str]:
    """Alternating rounds of the three (four) measurements (seconds each), and the image."""
    with tempfile.TemporaryDirectory(prefix="pipec-bench-") as tmp:
        root = Path(tmp)
        _project(root, steps)
        (root / "ticks.py").write_text(TICKS.format(steps=steps), encoding="utf-8")
        _, summary = _run(root)  # builds or reuses the image; not timed
        image = summary["images"][0]["image"]
        noop = _noop_image(image, root / "noop")
        stand_in = ("image=" + noop, "python=pipec-noop-python")
        _run(root, *stand_in, ref="ticks.py")  # probes the copy once; not timed
        found: dict[str, list[float]] = {"ours": [], "bare": [], "runner": [], "baseline": []}
        if baseline is not None:
            _run(root, pipec=baseline)  # builds or reuses its own image; not timed
        for _ in range(pairs):
            seconds, summary = _run(root)
            assert summary["steps"][-1]["outputs"] == {"output": steps}, summary
            found["ours"].append(seconds)
            start = time.perf_counter()
            for _ in range(steps):
                command = ["docker", "run", "--rm", "--network", "none", image, "python3", "-c"]
                subprocess.run([*command, "pass"], check=True, capture_output=True)
            found["bare"].append(time.perf_counter() - start)
            seconds, summary = _run(root, *stand_in, ref="ticks.py")
            assert [s["status"] for s in summary["steps"]] == ["succeeded"] * steps, summary
            found["runner"].append(seconds)
            if baseline is not None:
                seconds, summary = _run(root, pipec=baseline)
                assert summary["steps"][-1]["outputs"] == {"output": steps}, summary
                found["baseline"].append(seconds)
        subprocess.run(["docker", "rmi", noop], capture_output=True, check=False)
    return found, image


def _remove_images(tags: list[str]) -> None:
    if tags:
        subprocess.run(["docker", "rmi", *tags], capture_output=True, check=False)


def _cold_tags(image: str) -> list[str]:
    """The step image and the deps image it was built from."""
    done = subprocess.run(
        ["docker", "image", "inspect", image, "--format", "{{.Parent}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    tags = [image]
    parent = done.stdout.strip()
    while parent:  # walk up to the deps image (the legacy builder keeps the chain)
        shown = subprocess.run(
            ["docker", "image", "inspect", parent, "--format", "{{json .RepoTags}} {{.Parent}}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split(" ", 1)
        names = json.loads(shown[0]) if shown[0] else []
        tags += [n for n in names if n.startswith("pipec-deps:")]
        parent = shown[1].strip() if len(shown) > 1 else ""
    return tags


def cold(steps: int) -> list[tuple[str, float, float]]:
    """(what, whole run seconds, of which building) for pipec's two runs and ZenML-style's."""
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="pipec-bench-cold-") as tmp:
        root = Path(tmp)
        _project(root, steps)
        first, summary = _run(root, f"requirements={COLD_REQUIREMENTS}")
        tags = _cold_tags(summary["images"][0]["image"])
        built = summary["images"][0]["build_seconds"] or 0.0
        rows.append(("pipec: first run (builds the image)", first, built))
        _project(root, steps, delta=2)  # edit the step's code
        second, summary = _run(root, f"requirements={COLD_REQUIREMENTS}")
        building = summary["images"][0]["build_seconds"] or 0.0
        rows.append(("pipec: second run, code edited", second, building))
        rows.append(("ZenML-style: first run (builds)", first, built))
        _remove_images(tags)  # ZenML rebuilds its image for every run
        _project(root, steps, delta=3)
        again, summary = _run(root, f"requirements={COLD_REQUIREMENTS}")
        rebuilt = summary["images"][0]["build_seconds"] or 0.0
        rows.append(("ZenML-style: second run (builds again)", again, rebuilt))
        _remove_images(_cold_tags(summary["images"][0]["image"]))
    return rows


def _ratios(these: list[float], those: list[float]) -> str:
    return " ".join(f"{a / b:.2f}x" for a, b in zip(these, those, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--no-cold", action="store_true", help="skip the image-build part")
    parser.add_argument("--baseline", type=Path, help="another pipec to run in the same rounds")
    args = parser.parse_args()
    console = Console()
    found, image = warm(args.steps, args.pairs, args.baseline)
    ours, bare, runner = found["ours"], found["bare"], found["runner"]
    table = Table(title=f"{args.steps}-step chain, {args.pairs} alternating rounds (medians)")
    for column in ("what", "seconds", "per step", "every round"):
        table.add_column(column, justify="left" if column == "what" else "right")
    rows = [
        ("pipec run --target local_docker, end to end", ours),
        (f"docker run --rm {image} python3 -c pass x{args.steps}", bare),
        ("  the runner alone (step runtime replaced by python3 -c pass)", runner),
    ]
    if args.baseline is not None:
        rows.append((f"baseline: {args.baseline} run, end to end", found["baseline"]))
    for label, values in rows:
        median = statistics.median(values)
        shown = " ".join(f"{v:.2f}" for v in values)
        table.add_row(label, f"{median:.2f}", f"{1000 * median / args.steps:.0f} ms", shown)
    console.print(table)
    ratio = statistics.median(ours) / statistics.median(bare)
    alone = statistics.median(runner) / statistics.median(bare)
    verdict = "met" if ratio <= 1.2 else "NOT met"
    console.print(f"ratio pipec / bare docker run: {ratio:.2f}x (goal <= 1.2x: {verdict})")
    console.print(f"ratio runner alone / bare docker run: {alone:.2f}x")
    if args.baseline is not None:
        before = statistics.median(found["baseline"]) / statistics.median(bare)
        console.print(f"ratio baseline / bare docker run: {before:.2f}x")
    console.print("pair by pair (each round's runs against that round's bare runs):")
    console.print("  pipec / bare:  " + _ratios(ours, bare))
    console.print("  runner / bare: " + _ratios(runner, bare))
    if args.baseline is not None:
        console.print("  baseline / bare: " + _ratios(found["baseline"], bare))
        console.print("  pipec / baseline: " + _ratios(ours, found["baseline"]))
    if args.no_cold:
        return
    rows = cold(args.steps)
    table = Table(title="image builds: pipec reuses, ZenML-style rebuilds every run")
    for column in ("run", "seconds", "of which building"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for label, seconds, building in rows:
        table.add_row(label, f"{seconds:.2f}", f"{building:.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
