"""Evaluates CEL inside the cel tool environment (.venvs/cel), never in the base install.

    python tests/cel_check.py < CASES_JSON

CASES_JSON is a list of `{"cel": text, "inputs": {name: {"number"|"string"|"bool": value}}}`:
each input is a `google.protobuf.Value` as KFP hands task inputs to a trigger policy (every number
a double). Prints one JSON list: per case `true`/`false`, or `"error: ..."` when CEL fails to parse
or to evaluate it. Exits 0 unless the input itself is malformed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import celpy
from celpy import celtypes

_KINDS = {"number": celtypes.DoubleType, "string": celtypes.StringType, "bool": celtypes.BoolType}


def _value(wrapped: dict[str, Any]) -> Any:
    ((kind, value),) = wrapped.items()
    return _KINDS[kind](value)


def evaluate(environment: celpy.Environment, case: dict[str, Any]) -> Any:
    parameters = celtypes.MapType(
        {celtypes.StringType(k): _value(v) for k, v in case["inputs"].items()}
    )
    activation = {
        "inputs": celtypes.MapType({celtypes.StringType("parameter_values"): parameters})
    }
    try:
        program = environment.program(environment.compile(case["cel"]))
        result = program.evaluate(activation)
    except Exception as exc:  # a parse or evaluation error is an answer, not a crash
        return f"error: {type(exc).__name__}: {exc}"
    if not isinstance(result, celtypes.BoolType):
        return f"error: not a bool: {result!r}"
    return bool(result)


def main() -> int:
    cases = json.load(sys.stdin)
    environment = celpy.Environment()
    print(json.dumps([evaluate(environment, case) for case in cases]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
