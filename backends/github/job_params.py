"""The workflow's inputs -> every parameter's checked JSON value (job.py's `params` mode).

`params` reads the workflow's inputs (`$PIPEC_INPUTS`, `toJSON(inputs)`; one JSON input holding
them all, `$PIPEC_PACKED`, when there are more parameters than GitHub allows inputs) and writes
one job output per parameter, checked as on every target (`pipec.backends.params`): defaults for
inputs a trigger did not give, e.g. a schedule, and for an empty input whose default GitHub could
not be given (`$PIPEC_EMPTY_IS_DEFAULT`); `<name>-indices` for list parameters a foreach runs over
(`$PIPEC_LOOPED`).
"""

from __future__ import annotations

import json
import os
from typing import Any

from pipec.backends.github.job_io import JobError, indices, json_env, write_output


def params() -> int:
    """Every parameter's JSON value from the workflow's inputs (see the module docstring)."""
    from pipec.backends.params import ParamError, resolve_params
    from pipec.ir.model import Param

    declared = {p.name: p for p in map(Param.model_validate, json_env("PIPEC_DECLARED"))}
    given_raw: dict[str, Any] = json_env("PIPEC_INPUTS") or {}
    if "PIPEC_PACKED" in os.environ:  # more parameters than inputs: one JSON input holds them
        packed = given_raw.get(os.environ["PIPEC_PACKED"]) or "{}"
        given_raw = json.loads(packed) if isinstance(packed, str) else packed
    given: dict[str, Any] = {}
    unwritten = "PIPEC_EMPTY_IS_DEFAULT"
    empty_is_default = set(json_env(unwritten)) if unwritten in os.environ else set()
    for name, value in given_raw.items():
        if name not in declared or value is None:
            continue
        if value == "" and (name in empty_is_default or declared[name].type != "str"):
            continue  # not given: the default applies
        given[name] = _input_value(value, declared[name].type, name)
    try:
        values = resolve_params(declared, given)
    except ParamError as exc:
        raise JobError(str(exc)) from None
    looped = set(json_env("PIPEC_LOOPED")) if "PIPEC_LOOPED" in os.environ else set()
    for name, value in values.items():
        write_output(name, json.dumps(value, sort_keys=True, ensure_ascii=False))
        if name in looped:
            if not isinstance(value, list):
                raise JobError(f"parameter {name!r} is not a list")
            write_output(f"{name}-indices", json.dumps(indices(value, f"parameter {name!r}")))
    return 0


def _input_value(value: Any, type_text: str, name: str) -> Any:
    """An input as the trigger gave it -> the parameter's value. A `str` parameter is its text;
    numbers and booleans may arrive as text (act, the REST API); the rest is JSON text."""
    if type_text == "str" or not isinstance(value, str):
        return value
    if type_text == "bool" and value in ("true", "false"):
        return value == "true"
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise JobError(f"parameter {name!r} ({type_text}) is not JSON: {value!r}") from None
