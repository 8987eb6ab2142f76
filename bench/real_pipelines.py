"""pipec's local target against ZenML's local orchestrator on real pipelines, side by side.

Runs, in alternating pairs within one invocation, whole processes each:

* `examples/iris.py` on pipec (caching off) vs the same pipeline on ZenML (`zenml_iris.py` from
  the shared reference folder), and
* a 100-step chain of trivial steps on pipec vs `zenml_chain.py 100`,

and prints the medians of wall time, CPU time (user + system of the whole process tree, as the
kernel accounts it when the tree is reaped) and peak memory (the largest single process), with
the pipec/ZenML ratio of each. pipec is measured as it runs for a user on a second run (imports
learned by the first, see `pipec.backends.local.preload`), and, for iris, also on a first run
(nothing learned: a fresh metadata store each time) and with preloading off (`--set
preload=false`, every step imports its own libraries, as before learned imports).

    bash .ci/toolenv zenml bench/requirements-zenml.txt      # ZenML 0.98's environment, once
    .venv/bin/python bench/real_pipelines.py [--pairs 3] [--reference ../shared/bench]

The machine should be quiet: the ratios hold better than the absolute figures, but both move
when other work shares the processors.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PIPEC = Path(sys.executable).with_name("pipec")
ZENML_PYTHON = REPO / ".venvs" / "zenml" / "bin" / "python"

CHAIN = """\
from pipec import pipeline, step


@step
def inc(x: int) -> int:
    return x + 1


@pipeline
def chain() -> None:
    x = inc(0)
    for _ in range(99):
        x = inc(x)
"""


@dataclass(frozen=True)
class Sample:
    """One whole process: wall seconds, CPU seconds of its tree, peak KiB of one process."""

    wall: float
    cpu: float
    peak_kib: int


def measure(command: list[str], cwd: Path, env: dict[str, str]) -> Sample:
    """Run `command` to its end; fail loudly if it fails (a failed run is no figure)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert process.stderr is not None
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({process.returncode}):\n{stderr.decode()[-2000:]}")
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)


def reference_folder(given: str | None) -> Path:
    """The shared folder with the ZenML pipelines (`../shared/bench` from the repository)."""
    candidates = [Path(given)] if given else [REPO.parent / "shared" / "bench"]
    candidates += [] if given else [REPO.parent.parent / "shared" / "bench"]
    for folder in candidates:
        if (folder / "zenml_iris.py").is_file():
            return folder.resolve()
    sys.exit(f"no zenml_iris.py in {', '.join(map(str, candidates))}: pass --reference")


class Cases:
    """The commands, their folders and environments."""

    def __init__(self, scratch: Path, reference: Path) -> None:
        self.env = {**os.environ, "ZENML_ANALYTICS_OPT_IN": "false"}
        self.env.pop("PIPEC_PRELOAD", None)
        self.pipec_root = scratch / "pipec"
        self.pipec_root.mkdir()
        (self.pipec_root / "pyproject.toml").write_text('[project]\nname = "bench"\n')
        shutil.copy(REPO / "examples" / "iris.py", self.pipec_root / "iris.py")
        (self.pipec_root / "chain.py").write_text(CHAIN)
        self.zenml_root = scratch / "zenml"
        self.zenml_root.mkdir()
        self.zenml_env = {**self.env, "ZENML_CONFIG_PATH": str(scratch / "zenml-config")}
        # ZenML runs only pipelines inside its source root (the folder of `zenml init`): the
        # reference scripts are copied into the scratch folder for this invocation only.
        for script in ("zenml_iris.py", "zenml_chain.py"):
            shutil.copy(reference / script, self.zenml_root / script)
        self.reference = self.zenml_root
        init = [str(ZENML_PYTHON.with_name("zenml")), "init"]
        subprocess.run(
            init, cwd=self.zenml_root, env=self.zenml_env, check=True, capture_output=True
        )

    def pipec(self, ref: str, *extra: str, fresh_store: bool = False) -> Sample:
        """`pipec run REF --no-cache`; `fresh_store`: nothing learned before this run."""
        if fresh_store:
            shutil.rmtree(self.pipec_root / ".pipec", ignore_errors=True)
        command = [str(PIPEC), "run", ref, "--no-cache", "--view", "quiet", *extra]
        return measure(command, self.pipec_root, self.env)

    def zenml(self, script: str, *args: str) -> Sample:
        """A reference pipeline on ZenML's local orchestrator."""
        command = [str(ZENML_PYTHON), str(self.reference / script), *args]
        return measure(command, self.zenml_root, self.zenml_env)


def summary(name: str, samples: list[Sample]) -> str:
    wall = statistics.median(s.wall for s in samples)
    cpu = statistics.median(s.cpu for s in samples)
    peak = statistics.median(s.peak_kib for s in samples) / 1024
    return f"{name:<38} {wall:8.2f} s {cpu:8.2f} s {peak:8.0f} MiB"


def ratios(name: str, ours: list[Sample], theirs: list[Sample]) -> str:
    """Medians of the pair-by-pair ratios (a pair ran back to back)."""
    pairs = [b.wall / a.wall for a, b in zip(ours, theirs, strict=True)]
    wall = statistics.median(pairs)
    cpu = statistics.median(a.cpu / b.cpu for a, b in zip(ours, theirs, strict=True))
    peak = statistics.median(a.peak_kib / b.peak_kib for a, b in zip(ours, theirs, strict=True))
    return (
        f"{name:<38} {wall:6.2f}x faster (wall)  {cpu:5.2f}x the CPU  {peak:5.2f}x the peak memory"
        f"\n{'':<38} pairs: "
        + ", ".join(
            f"{a.wall:.2f} s vs {b.wall:.2f} s ({r:.1f}x)"
            for a, b, r in zip(ours, theirs, pairs, strict=True)
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--reference", help="folder with zenml_iris.py and zenml_chain.py")
    args = parser.parse_args()
    if not ZENML_PYTHON.exists():
        sys.exit("no ZenML environment: bash .ci/toolenv zenml bench/requirements-zenml.txt")
    reference = reference_folder(args.reference)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pipec-real-") as tmp:
        cases = Cases(Path(tmp), reference)
        # Warm-up (not counted): file caches, ZenML's store, and pipec's learned imports.
        cases.zenml("zenml_iris.py")
        cases.pipec("iris.py")
        runs: dict[str, list[Sample]] = {
            k: [] for k in ("iris", "zen_iris", "first", "off", "chain", "zen_chain")
        }
        for _ in range(args.pairs):
            runs["iris"].append(cases.pipec("iris.py"))
            runs["zen_iris"].append(cases.zenml("zenml_iris.py"))
            runs["chain"].append(cases.pipec("chain.py"))
            runs["zen_chain"].append(cases.zenml("zenml_chain.py", "100"))
            runs["off"].append(cases.pipec("iris.py", "--set", "preload=false"))
            runs["first"].append(cases.pipec("iris.py", fresh_store=True))
            cases.pipec("iris.py")  # learn again for the next pair's second run
    print(
        f"{args.pairs} alternating pairs; load average {load:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after, {os.cpu_count()} CPUs"
    )
    print(f"{'median of':<38} {'wall':>10} {'CPU':>10} {'peak memory':>12}")
    print(summary("pipec iris (second run: learned)", runs["iris"]))
    print(summary("pipec iris (first run: nothing learned)", runs["first"]))
    print(summary("pipec iris (preload off: as before)", runs["off"]))
    print(summary("ZenML 0.98 iris", runs["zen_iris"]))
    print(summary("pipec chain of 100", runs["chain"]))
    print(summary("ZenML 0.98 chain of 100", runs["zen_chain"]))
    print(ratios("iris: pipec vs ZenML", runs["iris"], runs["zen_iris"]))
    print(ratios("chain of 100: pipec vs ZenML", runs["chain"], runs["zen_chain"]))
    print(ratios("iris: first run vs preload off", runs["first"], runs["off"]))


if __name__ == "__main__":
    main()
