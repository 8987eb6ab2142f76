"""A fused chain: several steps run one after the other in one process, through the runtime.

The optimizer's fusion (`pipec.backends.lowerings.fuse`) turns a chain of steps into one step that
calls the synthetic component `pipec.backends.runtime.chain:run_chain`. Engines run it like any
step (`python -m pipec.backends.runtime --component pipec.backends.runtime.chain:run_chain ...`);
the runtime hands the whole invocation here (`core.execute`), and each member runs through
`core.execute` with an invocation of its own, exactly as if it were its own task:

* the fused step's input `chain` (a JSON value, `SPEC_INPUT`) lists the members in order: id,
  display name, where the user wrote it, `MODULE:FUNCTION`, return shape, code hash, and where
  each input comes from: one of the fused step's inputs (`{"input": NAME}`) or an output of an
  earlier member (`{"step": ID, "output": NAME}`);
* every output of every member is an output of the fused step (`{"outputs": {NAME: PORT}}`), so
  each member's outputs are stored on their own, with their own content hash, at the place the
  engine gave for that port; a later member reads an earlier one's output back from the store
  (`artifact:DEST`), as it would across tasks;
* each member's log is its own section, opened by `--- pipec: step ID (K/N) at FILE:LINE ---` and
  closed by a line saying whether it succeeded; a failure names the step and its line.

The members' code hashes are part of `chain`, so a cache keyed on the fused step's inputs (the
local runner's, KFP's) misses when any member's code changed. This module depends on the
standard library and the runtime only, like the rest of the runtime.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import Any

from pipec.backends.runtime import executor_input
from pipec.backends.runtime.invocation import (
    Invocation,
    InvocationError,
    SourceKind,
    source,
    split_source,
)

COMPONENT_MODULE = __name__
COMPONENT_FUNCTION = "run_chain"
SPEC_INPUT = "chain"
SPEC_VERSION = 1


def run_chain(invocation: Invocation[str]) -> dict[str, dict[str, Any]]:
    """Run every member of the chain in order; return port name -> meta.json content.

    Raises what the failing member raised (the runtime reports it), after closing its section."""
    from pipec.backends.runtime import core  # core hands chains here: import it late

    if SPEC_INPUT not in invocation.inputs:
        raise InvocationError(f"a fused chain needs its --input {SPEC_INPUT}=SOURCE")
    members = _members(core.load_input(invocation.inputs[SPEC_INPUT]))
    metas: dict[str, dict[str, Any]] = {}
    produced: dict[tuple[str, str], str] = {}  # (member, output) -> its port
    for position, member in enumerate(members, 1):
        step_id, at = str(member["id"]), str(member.get("at", "?"))
        own = _invocation(invocation, member, produced)
        _section(f"--- pipec: step {step_id} ({position}/{len(members)}) at {at} ---")
        started = time.monotonic()
        # Each member's `pipec.context()` names the member, as it would in a task of its own.
        fused_id = os.environ.get("PIPEC_STEP_ID")
        os.environ["PIPEC_STEP_ID"] = step_id
        try:
            written = core.execute(own)
        except BaseException:
            _section(f"--- pipec: step {step_id} failed (written at {at}) ---", sys.stderr)
            raise
        finally:
            if fused_id is None:
                os.environ.pop("PIPEC_STEP_ID", None)
            else:
                os.environ["PIPEC_STEP_ID"] = fused_id
        _section(f"--- pipec: step {step_id} succeeded in {time.monotonic() - started:.2f}s ---")
        for output, port in _outputs(member).items():
            produced[(step_id, output)] = port
            if output in written:
                metas[port] = written[output]
    return metas


def _members(spec: Any) -> list[Mapping[str, Any]]:
    if not isinstance(spec, dict) or spec.get("pipec_chain") != SPEC_VERSION:
        raise InvocationError(
            f"input {SPEC_INPUT!r} is not a chain of version {SPEC_VERSION} (compiled by another "
            "version of pipec?)"
        )
    steps = spec.get("steps")
    if not isinstance(steps, list) or not all(isinstance(m, dict) for m in steps):
        raise InvocationError(f"input {SPEC_INPUT!r} has no list of steps")
    return steps


def _outputs(member: Mapping[str, Any]) -> dict[str, str]:
    outputs = member.get("outputs", {})
    if not isinstance(outputs, dict):
        raise InvocationError(f"chain step {member.get('id')!r}: outputs must be an object")
    return {str(k): str(v) for k, v in outputs.items()}


def _invocation(
    fused: Invocation[str], member: Mapping[str, Any], produced: Mapping[tuple[str, str], str]
) -> Invocation[str]:
    """The member's own invocation: its inputs from the fused step's inputs or from earlier
    members' stored outputs, its outputs at the places the engine gave the fused step's ports."""
    step_id = member.get("id")
    inputs: dict[str, str] = {}
    for name, ref in dict(member.get("inputs", {})).items():
        if isinstance(ref, dict) and "input" in ref:
            if ref["input"] not in fused.inputs:
                raise InvocationError(f"chain step {step_id!r}: no --input {ref['input']}")
            inputs[name] = fused.inputs[ref["input"]]
            kind, rest = split_source(inputs[name])
            if kind is SourceKind.KFP_ARTIFACTS and fused.kfp_executor_input is not None:
                # The list is in the fused step's executor input, which members do not get.
                document = executor_input.parse(fused.kfp_executor_input)
                inputs[name] = executor_input.as_artifacts_source(document, rest)
        elif isinstance(ref, dict) and (ref.get("step"), ref.get("output")) in produced:
            port = produced[(ref["step"], ref["output"])]
            if port not in fused.outputs:
                raise InvocationError(f"chain step {step_id!r}: input {name} needs --output {port}")
            inputs[name] = source(SourceKind.ARTIFACT, fused.outputs[port])
        else:
            raise InvocationError(
                f"chain step {step_id!r}: input {name} reads {ref!r}, which no earlier step of "
                "the chain produced"
            )
    ports = _outputs(member)
    return Invocation(
        component=str(member["component"]),
        returns=str(member.get("returns", "single")),
        code_root=fused.code_root,
        inputs=inputs,
        outputs={o: fused.outputs[p] for o, p in ports.items() if p in fused.outputs},
        output_values={
            o: fused.output_values[p] for o, p in ports.items() if p in fused.output_values
        },
        output_texts={
            o: fused.output_texts[p] for o, p in ports.items() if p in fused.output_texts
        },
    )


def _section(line: str, stream: Any = None) -> None:
    """One log-section line, in order with what the steps printed on either stream."""
    sys.stdout.flush()
    sys.stderr.flush()
    print(line, file=stream or sys.stdout, flush=True)
