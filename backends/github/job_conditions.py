"""Conditions a job decides in Python (job.py's `decide` mode, and `when` inside a foreach).

GitHub decides a job's `if:` before its matrix expands, and its expressions cannot say every test
the way the local target means it; where they cannot, the job evaluates the IR's condition with
`pipec.ir.evaluate` (the local target's own meaning) over the operands' JSON values:

* `decide`: `$PIPEC_TEST` (the IR's JSON form) over `--operand KEY=VAR`, written as the job
  output `holds=true|false`;
* `when` branches inside a foreach: `$PIPEC_WHEN` lists the tests around the step (IR JSON) with
  the branch each is on, `--operand KEY=SOURCE` what they read (`env:VAR`,
  `store:STEP/OUTPUT/DEPTH`, `item:LOOP`); when a branch is not taken in this iteration the step
  does not run (`branch_not_taken` says why).

pydantic and the IR are imported only here, where used: a step whose branch is taken and every
other mode start without them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from pipec.backends.github.job_io import (
    JobError,
    env,
    iteration_index,
    json_env,
    pairs,
    write_output,
)
from pipec.backends.github.job_loops import Loops
from pipec.backends.runtime import store


def operand_key(operand: Mapping[str, Any]) -> str:
    """How `decide` names an operand (IR JSON form): `params.P`, `steps.S.O`, `loops.L`."""
    kind = operand["kind"]
    if kind == "param":
        return f"params.{operand['param']}"
    if kind == "output":
        return f"steps.{operand['step']}.{operand['output']}"
    return f"loops.{operand['loop']}"


def _holds(test_json: Any, operands: Mapping[str, Any]) -> bool:
    """Whether the test (the IR's JSON form) holds over the operands' values, keyed by
    `operand_key`."""
    from pydantic import TypeAdapter

    from pipec.ir import evaluate
    from pipec.ir.model import Expr

    test: Expr = TypeAdapter(Expr).validate_python(test_json)
    try:
        return evaluate.holds(test, lambda ref: operands[operand_key(ref.model_dump())])
    except evaluate.EvaluationError as exc:
        raise JobError(f"the condition cannot be decided: {exc}") from None


def branch_not_taken(args: argparse.Namespace) -> str | None:
    """Why this iteration does not run the step (a `when` branch around it not taken), or None."""
    operands: dict[str, Any] = {}
    for key, spec in pairs(args.operand, "--operand"):
        kind, _, where = spec.partition(":")
        if kind == "env":
            operands[key] = json_env(where)
        elif kind == "item":
            loops, at = Loops(), iteration_index()
            depth = loops.depth(where)
            operands[key] = loops.items(where, at[: depth - 1])[at[depth - 1]]
        elif kind == "store":
            step_id, output, depth_text = where.split("/")
            at = iteration_index()[: int(depth_text)]
            root, run_id = env("PIPEC_ARTIFACT_ROOT"), env("PIPEC_RUN_ID")
            operands[key] = store.read(store.output_uri(root, run_id, step_id, at, output))
        else:
            raise JobError(f"--operand takes KEY=env:|store:|item:..., got {spec!r}")
    for branch in json_env("PIPEC_WHEN"):
        if _holds(branch["test"], operands) != bool(branch["then"]):
            side = "then" if branch["then"] else "otherwise"
            return f"the {side} branch of {branch['condition']} is not taken in this iteration"
    return None


def decide(args: argparse.Namespace) -> int:
    """Evaluate `$PIPEC_TEST` over the operands' JSON values; write `holds`."""
    operands = {key: json_env(var) for key, var in pairs(args.operand, "--operand")}
    holds = _holds(json_env("PIPEC_TEST"), operands)
    print(f"pipec: the test is {'true' if holds else 'false'}", file=sys.stderr)
    write_output("holds", "true" if holds else "false")
    return 0
