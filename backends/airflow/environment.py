"""Values the airflow target hands to steps in their environment, checked against Linux's limit.

Every value input reaches a step as an environment variable `PIPEC_INPUT_<name>` holding JSON text
(`values`), and Linux refuses to start a process with one environment string (`NAME=value`)
longer than 128 KiB (`MAX_ARG_STRLEN`), in every operator mode. Constants and the items of a
foreach over a literal list are known now: one too long is a U001 error naming the step (or the
foreach) and the input. Parameter values are only known when a run starts; the README states the
limit for them.
"""

from __future__ import annotations

from pipec.backends.airflow import values
from pipec.backends.common import k8s
from pipec.backends.diagnostics import unsupported_feature
from pipec.ir import graph
from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import Const, Loop, Pipeline, Step

MAX_ENV_STRING = 128 * 1024
"""Bytes Linux accepts in one environment string (`NAME=value` and its NUL)."""

HINT = (
    "make it a pipeline parameter with this default (or pass it at run time), or have a step "
    "return it as an artifact (bytes, a DataFrame, ...), which travels as a file"
)


def check(pipeline: Pipeline) -> list[Diagnostic]:
    """One U001 per constant input, and per foreach, whose environment string is too long."""
    found: list[Diagnostic] = []
    for node, _ in graph.walk(pipeline.body):
        if isinstance(node, Step):
            for name in sorted(node.args):
                binding = node.args[name]
                if isinstance(binding, Const):
                    size = env_bytes(values.input_variable(name), binding.value)
                    if size > MAX_ENV_STRING:
                        what = f"the constant for input {name!r} of step {node.id!r}"
                        found.append(_too_long(node.id, node, what, size))
        elif isinstance(node, Loop) and isinstance(node.items, Const):
            items = node.items.value if isinstance(node.items.value, list) else []
            sizes = [env_bytes(values.input_variable("item"), item) for item in items]
            if sizes and max(sizes) > MAX_ENV_STRING:
                what = f"an item of foreach {node.id!r}"
                found.append(_too_long(node.id, node, what, max(sizes)))
    return found


def env_bytes(variable: str, value: object) -> int:
    """The bytes of `VARIABLE=<JSON text>` in a step's environment, its NUL included."""
    return len(f"{variable}={k8s.json_env_text(value)}".encode("utf-8", "surrogatepass")) + 1


def _too_long(node_id: str, node: Step | Loop, what: str, size: int) -> Diagnostic:
    return unsupported_feature(
        "airflow",
        node_id,
        node.location,
        f"{what}: {size:,} bytes in the step's environment, where Linux refuses one "
        "environment string over 128 KiB",
        HINT,
    )
