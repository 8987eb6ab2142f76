"""pipec's kubernetes compile next to its kubeflow compile, on the same pipelines: a chain and a
fan-out of N identical steps (each takes an int and outputs an int). No other tool emits plain
Jobs from a DAG, so the comparison is with the other Kubernetes target pipec has. Prints one
table with times, manifest sizes and the ratios:

    .venv/bin/python bench/kubernetes_compile.py [--sizes 100,2000] [--rounds 3]

Both targets are timed the same way: trace + passes + lowering + emit (every file's text), the
fastest of `--rounds` (the least disturbed by other work on the machine). Sizes are the bytes of
every file `pipec compile -o` writes: kubeflow's one pipeline.yaml; kubernetes' RBAC, plan
ConfigMap and driver Job, and the step templates (`steps/*.yaml`, for reading: the share applied
with `kubectl apply -f DIR` is shown apart).
"""

from __future__ import annotations

import argparse
import sys
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

SETTINGS = {
    "kubeflow": {"image": "ghcr.io/acme/pipec-bench:1"},
    "kubernetes": {"image": "ghcr.io/acme/pipec-bench:1", "volume": "pipec-artifacts"},
}


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


def compile_once(target: str, shape: str, n: int) -> tuple[float, int, int]:
    """Seconds end to end, all bytes written, and the bytes `kubectl apply -f DIR` reads."""
    backend = configure(target, REPO, SETTINGS[target])
    fn = make(shape, n)
    start = time.perf_counter()
    ir, found = trace_pipeline(fn, REPO)
    assert ir is not None and not errors(found)
    checked, found = check(ir, target)
    assert not errors(found), found[:3]
    bundle = backend.emit(run(backend.lowerings, checked, PassContext(target)))
    seconds = time.perf_counter() - start
    sizes = {name: len(text.encode()) for name, text in bundle.items()}
    applied = sum(size for name, size in sizes.items() if not name.startswith("steps/"))
    return seconds, sum(sizes.values()), applied


def best(target: str, shape: str, n: int, rounds: int) -> tuple[float, int, int]:
    runs = [compile_once(target, shape, n) for _ in range(rounds)]
    return min(r[0] for r in runs), runs[0][1], runs[0][2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,2000")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    header = (
        f"{'shape':<7} {'steps':>6} {'kubeflow s':>11} {'kubernetes s':>13} {'ratio':>6} "
        f"{'kubeflow MB':>12} {'k8s MB':>8} {'k8s applied MB':>15}"
    )
    print(header)
    print("-" * len(header))
    for shape in ("chain", "fanout"):
        for n in (int(s) for s in args.sizes.split(",")):
            kfp_s, kfp_bytes, _ = best("kubeflow", shape, n, args.rounds)
            k8s_s, k8s_bytes, k8s_applied = best("kubernetes", shape, n, args.rounds)
            print(
                f"{shape:<7} {n:>6} {kfp_s:>11.3f} {k8s_s:>13.3f} {k8s_s / kfp_s:>6.2f} "
                f"{kfp_bytes / 1e6:>12.2f} {k8s_bytes / 1e6:>8.2f} {k8s_applied / 1e6:>15.2f}"
            )


if __name__ == "__main__":
    main()
