"""Pipeline parameter values for every target: `--param k=v` text, defaults, type checks.

Checked once, before anything runs or is sent: the local runner and every submitter get values
that exist, fit their types and are complete."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pipec.ir import types
from pipec.ir.diagnostics import InvalidInput
from pipec.ir.model import Param, Pipeline


class ParamError(InvalidInput, ValueError):
    """A parameter value that is missing, unknown or of the wrong type."""


def declared_params(pipeline: Pipeline) -> dict[str, Param]:
    """The pipeline's parameters by name (what `parse_pairs` and `resolve_params` take)."""
    return {p.name: p for p in pipeline.params}


def parse_pairs(pairs: Sequence[str], declared: Mapping[str, Param]) -> dict[str, Any]:
    """`name=value` pairs from the command line. A `str` parameter takes the text as is (an
    `optional[str]` one too, except `null`, which means None); any other type takes JSON
    (`--param epochs=3`, `--param layers=[64,32]`, `--param limit=null`)."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParamError(f"expected --param name=value, got {pair!r}")
        param = declared.get(name)
        if param is None:
            raise ParamError(_unknown(name, declared))
        if param.type == "str":
            values[name] = text
            continue
        if param.type == "optional[str]":
            # `null` is how the command line says None; any other text is the string itself.
            values[name] = None if text == "null" else text
            continue
        try:
            values[name] = json.loads(text)
        except json.JSONDecodeError:
            values[name] = text  # reported below as a type mismatch, with the expected type
        except (ValueError, RecursionError) as exc:  # 5,000 digits; JSON nested thousands deep
            raise ParamError(f"--param {name}: the value cannot be read: {exc}") from None
    return values


def resolve_params(declared: Mapping[str, Param], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared parameter's value: given, else its default; checked against its type."""
    values: dict[str, Any] = {}
    for name in given:
        if name not in declared:
            raise ParamError(_unknown(name, declared))
    for name, param in sorted(declared.items()):
        if name in given:
            value = given[name]
        elif param.required:
            raise ParamError(f"parameter {name!r} ({param.type}) is required: --param {name}=...")
        else:
            value = param.default
        if not types.check_value(value, param.type):
            raise ParamError(f"parameter {name!r} expects {param.type}, got {value!r}")
        values[name] = types.coerce(value, param.type)
    return values


def _unknown(name: str, declared: Mapping[str, Param]) -> str:
    return f"unknown parameter {name!r}; parameters: {', '.join(sorted(declared)) or '(none)'}"
