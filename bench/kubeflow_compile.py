"""pipec's kubeflow compile against KFP's own compiler, side by side, on the same pipelines: a chain
and a fan-out of N identical container steps (each takes an int and outputs an int). Prints one
table with times, YAML sizes and the ratios.

    .venv/bin/python bench/kubeflow_compile.py [--sizes 100,1000,2000,5000] [--max-kfp 2000]

pipec is timed end to end from the Python source: trace + passes + lowering + emit (YAML text).
KFP is timed from defining the pipeline (its tracing happens at decoration) to the compiled file,
in the kfp tool environment (`bash .ci/toolenv kfp`). KFP needs minutes at 5000 steps, so
`--max-kfp N` skips it above N (pipec still runs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipec import pipeline, step  # noqa: E402
from pipec.driver import check, configure  # noqa: E402
from pipec.ir.diagnostics import errors  # noqa: E402
from pipec.ir.passes import PassContext, run  # noqa: E402
from pipec.tracing import trace_pipeline  # noqa: E402

IMAGE = "ghcr.io/acme/pipec-bench:1"


@step
def inc(x: int) -> int:
    return x + 1


def make(shape: str, n: int) -> Any:
    if shape == "chain":

        @pipeline(name=f"chain-{n}")
        def chain(start: int = 0) -> None:
            x = inc(x=start)
            for _ in range(n - 1):
                x = inc(x=x)

        return chain

    @pipeline(name=f"fanout-{n}")
    def fanout(start: int = 0) -> None:
        x = inc(x=start)
        for _ in range(n - 1):
            inc(x=x)

    return fanout


def pipec_compile(shape: str, n: int) -> tuple[float, float, int]:
    """Seconds end to end (trace -> passes -> lower -> emit), seconds of the backend alone
    (lower -> emit), and YAML bytes."""
    backend = configure("kubeflow", REPO, {"image": IMAGE})
    fn = make(shape, n)
    start = time.perf_counter()
    ir, found = trace_pipeline(fn, REPO)
    assert ir is not None and not errors(found)
    checked, found = check(ir, "kubeflow")
    assert not errors(found), found[:3]
    middle = time.perf_counter()
    bundle = backend.emit(run(backend.lowerings, checked, PassContext("kubeflow")))
    end = time.perf_counter()
    return end - start, end - middle, len(bundle["pipeline.yaml"].encode())


# The equivalent KFP pipeline: one container component with the same image and runtime command,
# called N times, compiled by kfp.compiler.Compiler. Runs in the kfp tool environment.
KFP_SCRIPT = """
import json, sys, time, os
from kfp import compiler, dsl

shape, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]

@dsl.container_component
def inc(x: int, output: dsl.OutputPath(int)):
    return dsl.ContainerSpec(
        image=%(image)r,
        command=["python3", "-m", "pipec.backends.runtime"],
        args=["--component", "bench:inc", "--returns", "single", "--code-root", "/app",
              "--input", dsl.ConcatPlaceholder(["x=value:", x]),
              "--output", "output=/tmp/pipec-outputs/output",
              "--output-value", dsl.ConcatPlaceholder(["output=", output])],
    )

start = time.perf_counter()
if shape == "chain":
    @dsl.pipeline(name=f"chain-{n}")
    def p(start: int = 0):
        x = inc(x=start).output
        for _ in range(n - 1):
            x = inc(x=x).output
else:
    @dsl.pipeline(name=f"fanout-{n}")
    def p(start: int = 0):
        x = inc(x=start).output
        for _ in range(n - 1):
            inc(x=x)
middle = time.perf_counter()
compiler.Compiler().compile(p, out)
end = time.perf_counter()
print(json.dumps({"seconds": end - start, "compile": end - middle, "bytes": os.path.getsize(out)}))
"""


def kfp_compile(python: Path, shape: str, n: int) -> tuple[float, float, int]:
    """Seconds end to end, seconds of Compiler.compile alone, and YAML bytes for KFP."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pipeline.yaml"
        done = subprocess.run(
            [str(python), "-c", KFP_SCRIPT % {"image": IMAGE}, shape, str(n), str(out)],
            capture_output=True,
            text=True,
            check=True,
        )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["seconds"]), float(result["compile"]), int(result["bytes"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,2000,5000")
    parser.add_argument("--shapes", default="chain,fanout")
    parser.add_argument("--max-kfp", type=int, default=5000, help="skip KFP above this N")
    args = parser.parse_args()
    python = REPO / ".venvs" / "kfp" / "bin" / "python"
    if not python.exists():
        sys.exit("the kfp tool environment is missing: bash .ci/toolenv kfp")
    sizes = [int(s) for s in args.sizes.split(",")]
    header = (
        f"{'shape':<7} {'N':>5} | {'pipec s':>8} {'kfp s':>8} {'speedup':>8} | "
        f"{'backend':>8} {'Compiler':>8} {'speedup':>8} | {'pipec KB':>8} {'kfp KB':>8} {'size':>5}"
    )
    print(header)
    print("-" * len(header))
    for shape in args.shapes.split(","):
        for n in sizes:
            total, backend, our_bytes = pipec_compile(shape, n)
            ours = f"{total:8.3f}"
            mine = f"{backend:8.3f}"
            if n <= args.max_kfp:
                theirs, compile_only, their_bytes = kfp_compile(python, shape, n)
                whole = f"{theirs:8.2f} {theirs / total:7.0f}x"
                part = f"{compile_only:8.2f} {compile_only / backend:7.0f}x"
                sizes_text = f"{their_bytes / 1024:8.0f} {our_bytes / their_bytes:5.2f}"
            else:
                whole = part = f"{'-':>8} {'-':>8}"
                sizes_text = f"{'-':>8} {'-':>5}"
            print(
                f"{shape:<7} {n:>5} | {ours} {whole} | {mine} {part} | "
                f"{our_bytes / 1024:8.0f} {sizes_text}",
                flush=True,
            )
    print(
        "\nend to end: pipec trace+passes+lower+emit vs KFP pipeline definition+compile;"
        "\nbackend: pipec lower+emit vs KFP Compiler.compile (tracing excluded on both sides);"
        "\nsize = pipec bytes / kfp bytes (goals at 2000 steps: speedup >= 100x, size <= 0.33)"
    )


if __name__ == "__main__":
    main()
