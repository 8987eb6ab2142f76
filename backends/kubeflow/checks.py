"""What a KFP-family spec would do differently from what the pipeline means, found at compile time.

* **Caching.** KFP reuses a task's earlier result when its fingerprint matches: the task's inputs,
  its output definitions, the image and the executor's command and arguments (Vertex also the
  env). The step's code hash is on that command line (`components.runtime_command`), so an edited
  step is a new fingerprint. A step whose code depends on something pipec could not hash
  (`Component.unhashed`) cannot be told apart from its older self that way: its cache is turned off
  (`spec`) and W001 says so, naming the dependency.
* **Values on the command line.** KFP substitutes every parameter into the container's arguments,
  and Linux refuses one argument over 128 KiB (`MAX_ARG_STRLEN`) with "Argument list too long"
  before the step starts. A constant too long for that is an error (U001); a list, dict or `any`
  value handed from one step to the next can grow that long at run time, which W002 warns about
  (artifacts travel as files instead, with no such limit). So can the list a `foreach` iterates
  over when a step makes it: the task numbering its items (`loop_entries`) takes it as an
  argument, and W002 names the loop among the readers.
"""

from __future__ import annotations

import json

from pipec.backends.diagnostics import unsupported_feature
from pipec.backends.kubeflow import components as kx
from pipec.ir import graph, types
from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import Collect, Const, OutputRef, Pipeline, Step

MAX_ARGUMENT = 128 * 1024
"""Bytes Linux accepts in one command-line argument (`MAX_ARG_STRLEN`, the NUL included)."""

_GROWING = ("list", "dict", "any")


def check(pipeline: Pipeline, target: str) -> list[Diagnostic]:
    """Every W001/W002 warning and every constant too long for a command line (U001)."""
    found: list[Diagnostic] = []
    components = graph.components(pipeline)
    env = graph.TypeEnv(pipeline)
    steps = {step.id: step for step in graph.steps(pipeline)}
    # (producer, output) -> its type and the steps that read it as a parameter: one W002 each.
    growing: dict[tuple[str, str], tuple[str, list[str]]] = {}
    for step in steps.values():
        unhashed = components[step.component].unhashed
        if step.cache and unhashed:
            found.append(_uncached(step, unhashed, target))
        for name in sorted(step.args):
            binding = step.args[name]
            if isinstance(binding, Const):
                problem = _long_constant(step, name, binding.value, target)
                if problem is not None:
                    found.append(problem)
            elif isinstance(binding, OutputRef | Collect):
                # A collect is as long as its loop; it is only warned about when its items can
                # grow themselves (a list of a few thousand numbers still fits).
                type_text = env.outputs.get((binding.step, binding.output), "any")
                if can_grow(type_text):
                    entry = growing.setdefault((binding.step, binding.output), (type_text, []))
                    entry[1].append(step.id)
    for loop in graph.loops(pipeline).values():
        items = loop.items
        if isinstance(items, OutputRef | Collect):
            item_type = env.outputs.get((items.step, items.output), "any")
            if isinstance(items, OutputRef) or can_grow(item_type):
                type_text = env.of(items) or "any"
                entry = growing.setdefault((items.step, items.output), (type_text, []))
                entry[1].append(loop.id)
    for (producer, output), (type_text, readers) in growing.items():
        found.append(_growing_value(steps[producer], output, type_text, readers, target))
    return found


def can_grow(type_text: str) -> bool:
    """Whether a value of this type has no size bound (a list, a dict or `any`, or an optional
    one) and travels as a KFP parameter (not an artifact)."""
    if types.is_artifact(type_text):
        return False
    expr = types.parse(type_text)
    while expr.name == "optional" and expr.arg is not None:
        expr = expr.arg
    return expr.name in _GROWING


def argument_bytes(name: str, value: object, type_text: str) -> int:
    """The length of `--input NAME=KIND:VALUE` as the step receives it, in UTF-8 bytes."""
    held = kx.kfp_value(value, type_text)
    text = held if isinstance(held, str) else json.dumps(held, separators=(",", ":"))
    kind = kx.source_kind(type_text).value
    return len(f"{name}={kind}:{text}".encode("utf-8", "surrogatepass")) + 1  # the NUL


def _uncached(step: Step, unhashed: tuple[str, ...], target: str) -> Diagnostic:
    shown = ", ".join(unhashed[:3]) + (", ..." if len(unhashed) > 3 else "")
    return Diagnostic(
        code="W001",
        message=(
            f"step {step.id!r} is not cached on target {target!r}: its code uses {shown}, which "
            "pipec cannot hash, so a changed value would not change what the engine caches on"
        ),
        hint=(
            "make it a module-level constant of plain data, or pass it to the step as a "
            "parameter; `cache=False` on the step says the same without this warning"
        ),
        location=step.location,
        severity="warning",
    )


def _long_constant(step: Step, name: str, value: object, target: str) -> Diagnostic | None:
    type_text = types.infer(value) or "any"
    size = argument_bytes(name, value, type_text)
    if size <= MAX_ARGUMENT:
        return None
    return unsupported_feature(
        target,
        step.id,
        step.location,
        f"the constant for input {name!r} of step {step.id!r}: {size:,} bytes on the step's "
        f"command line, where Linux refuses one argument over 128 KiB",
        "pass it as an artifact (read it in a step that returns e.g. bytes or a DataFrame), or "
        "load it inside the step",
    )


def _growing_value(
    producer: Step, output: str, type_text: str, readers: list[str], target: str
) -> Diagnostic:
    shown = ", ".join(repr(r) for r in dict.fromkeys(readers))
    return Diagnostic(
        code="W002",
        message=(
            f"output {output!r} of step {producer.id!r} ({type_text}) reaches {shown} on the "
            f"command line ({target} passes values as arguments): a value over 128 KiB there "
            'fails the step with "Argument list too long" before it starts'
        ),
        hint=(
            "if it can grow that large, return an artifact type instead (pandas.DataFrame, "
            "numpy.ndarray, bytes, ...), which travels as a file"
        ),
        location=producer.location,
        severity="warning",
    )
