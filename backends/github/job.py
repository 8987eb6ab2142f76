"""What a job of a pipec workflow runs: the step runtime with what GitHub Actions lacks around it.

    python -m pipec.backends.github.job step [OPTIONS] -- RUNTIME-ARGS
    python -m pipec.backends.github.job params
    python -m pipec.backends.github.job iterations --loop LOOP
    python -m pipec.backends.github.job decide --operand KEY=VAR ...

`step` runs `python -m pipec.backends.runtime RUNTIME-ARGS` (an `Invocation`, built by the target
like on every engine; the step's retries and timeout are the runtime's own `--retries`,
`--retry-delay` and `--timeout`, since GitHub Actions has no retries) and adds:

* loop inputs (`--item`, `--collect`, and `--loop-item`, `--loop-collect`, `--outer` in a
  foreach inside a foreach): the iteration's item, an output collected over a loop, read by the
  job itself from the loop's items (job_loops.py);
* `when` branches inside a foreach (a job's `if:` is decided before its matrix expands):
  `$PIPEC_WHEN` and `--operand KEY=SOURCE` (job_conditions.py); when a branch is not taken in this
  iteration the job ends at once, printing `SKIPPED` and the reason;
* the step's own environment: `$PIPEC_ENV`, a JSON object (a `$` in it is `\\u0024`, so GitHub
  never reads an expression in it);
* job outputs: `--export NAME` writes output NAME's JSON text to `$GITHUB_OUTPUT` (conditions,
  matrices and later jobs read it), `--indices NAME` also `NAME-indices`, the list `[0, .., n-1]`
  a matrix over NAME's items expands.

`params` turns the workflow's inputs into every parameter's checked JSON value, one job output
each (job_params.py).

`iterations --loop LOOP` lists every iteration of a foreach inside a foreach over every
iteration of the loops around it (none when `$PIPEC_TAKEN`, its `when` branches, is not `true`),
as the job output `iterations` (`["0/0", "0/1", ..]`, what the matrix of each of its steps' jobs
expands); past GitHub's 256 jobs it fails, naming the numbers (job_loops.py).

`decide` evaluates a condition (`$PIPEC_TEST`, the IR's JSON form) in Python, the local target's
meaning, for tests GitHub's expressions cannot say the same way, and writes `holds=true|false`
(job_conditions.py).

Values only ever arrive through environment variables; nothing here is a shell or an expression
(job_io.py: what a job reads and writes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from pipec.backends.github.job_conditions import branch_not_taken, decide
from pipec.backends.github.job_io import SKIPPED, JobError, indices, json_env, write_output
from pipec.backends.github.job_loops import iterations, loop_inputs
from pipec.backends.github.job_params import params
from pipec.backends.runtime.invocation import RUNTIME_MODULE, parse

EXIT_BAD = 2


def step(args: argparse.Namespace, runtime_args: list[str]) -> int:
    """Run the step runtime with loop inputs resolved and outputs exported."""
    if "PIPEC_WHEN" in os.environ:
        not_taken = branch_not_taken(args)
        if not_taken is not None:
            print(f"{SKIPPED} {not_taken}", flush=True)
            return 0
    invocation = parse(runtime_args)
    inputs = dict(invocation.inputs)
    loop_inputs(args, inputs)
    exported = [*args.export, *(n for n in args.indices if n not in args.export)]
    with tempfile.TemporaryDirectory(prefix="pipec-job-") as tmp:
        values = {name: str(Path(tmp) / f"{name}.json") for name in exported}
        for name, path in values.items():
            invocation = invocation.with_output_value(name, path)
        invocation = replace(invocation, inputs=inputs)
        command = [sys.executable, "-m", RUNTIME_MODULE, *invocation.argv()]
        env = {**os.environ, **(json_env("PIPEC_ENV") if "PIPEC_ENV" in os.environ else {})}
        code = subprocess.run(command, env=env, check=False).returncode
        if code != 0:
            return code
        for name, path in values.items():
            text = Path(path).read_text(encoding="utf-8")
            write_output(name, text)
            if name in args.indices:
                looped = json.loads(text)
                if not isinstance(looped, list):
                    raise JobError(f"a foreach runs over output {name}, which is not a list")
                write_output(f"{name}-indices", json.dumps(indices(looped, f"output {name}")))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring); exit 2 for a job set up wrongly."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    runtime_args: list[str] = []
    if "--" in args_in:
        cut = args_in.index("--")
        args_in, runtime_args = args_in[:cut], args_in[cut + 1 :]
    parser = argparse.ArgumentParser(prog="python -m pipec.backends.github.job")
    modes = parser.add_subparsers(dest="mode", required=True)
    run = modes.add_parser("step")
    flags = ("--item", "--collect", "--export", "--indices", "--loop-item", "--loop-collect")
    for flag in (*flags, "--outer", "--operand"):
        run.add_argument(flag, action="append", default=[])
    modes.add_parser("params")
    modes.add_parser("iterations").add_argument("--loop", required=True)
    test = modes.add_parser("decide")
    test.add_argument("--operand", action="append", default=[])
    args = parser.parse_args(args_in)
    try:
        if args.mode == "step":
            return step(args, runtime_args)
        if args.mode == "params":
            return params()
        if args.mode == "iterations":
            return iterations(args)
        return decide(args)
    except JobError as exc:
        print(f"pipec job: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_BAD


if __name__ == "__main__":
    sys.exit(main())
