"""Types line up: parameters are values, each input gets what it expects, conditions test values
and loops iterate over lists."""

from __future__ import annotations

from typing import assert_never

from pipec.ir import graph, types
from pipec.ir.graph import describe
from pipec.ir.model import (
    And,
    Binding,
    Compare,
    Condition,
    Const,
    Group,
    Location,
    Loop,
    Not,
    Or,
    Pipeline,
    Step,
)
from pipec.passes.context import PassContext

_ORDERED = {"int", "float", "str", "any"}


def typecheck(pipeline: Pipeline, ctx: PassContext) -> Pipeline:
    """Report type mismatches; references to things that do not exist are reported here too."""
    if not _type_strings_parse(pipeline, ctx):
        return pipeline  # every check below reads these types
    for param in pipeline.params:
        _check_param(param.name, param.type, param.required, param.default, pipeline, ctx)
    env = graph.TypeEnv(pipeline)
    comps = graph.components(pipeline)
    for node, _ in graph.walk(pipeline.body):
        match node:
            case Step():
                comp = comps.get(node.component)
                inputs = {p.name: p for p in comp.inputs} if comp else {}
                for name, binding in node.args.items():
                    source = _type_of(binding, env, node.location, ctx)
                    port = inputs.get(name)
                    if source is None or port is None:
                        continue
                    if isinstance(binding, Const):
                        # A literal is checked element by element: [0.1, "x"] is a list[any],
                        # which would pass as a list[float] by type alone.
                        fits = types.check_value(binding.value, port.type)
                    else:
                        fits = types.assignable(source, port.type)
                    if not fits:
                        ctx.error(
                            "T101",
                            f"input {name!r} of step {node.id!r} expects {port.type} but gets "
                            f"{source} from {describe(binding)}",
                            "change the annotation of one side, or convert the value in a step",
                            node.location,
                        )
            case Condition():
                for compare in _compares(node):
                    _check_compare(compare, env, node.location, ctx)
                for operand in graph.expr_operands(node.test):
                    source = _type_of(operand, env, node.location, ctx)
                    if source is not None and not types.is_value(source):
                        ctx.error(
                            "T103",
                            f"the condition tests {describe(operand)}, an artifact ({source}); "
                            "conditions can only test values",
                            "compute a value (a number, string or bool) from it in a step and "
                            "test that",
                            node.location,
                        )
            case Loop():
                source = _type_of(node.items, env, node.location, ctx)
                if source is not None and types.item_type(source) is None:
                    ctx.error(
                        "T104",
                        f"foreach() iterates over {describe(node.items)}, which is {source}, "
                        "not a list",
                        "pass a list literal, a list parameter, or a step output of type list[...]",
                        node.location,
                    )
                elif source is not None and types.is_artifact(types.item_type(source) or "any"):
                    # Loop items travel as values on every engine (a KFP parameter iterator, an
                    # Airflow mapping, a GitHub matrix); the local runner reads them the same way,
                    # so without this the run fails only after the producer ran.
                    ctx.error(
                        "T108",
                        f"foreach() iterates over {describe(node.items)}, which is {source}: a "
                        "list of artifacts, but loop items are values on every engine",
                        "loop over a list of values (names, indices) and give the steps in the "
                        "loop the whole list to pick from, or loop inside one step",
                        node.location,
                    )
            case Group():
                pass  # a group reads nothing itself: its steps are checked one by one
            case _:
                assert_never(node)
    return pipeline


def _type_strings_parse(pipeline: Pipeline, ctx: PassContext) -> bool:
    """Report every malformed type string (only hand-written IR has them): T107."""
    ok = True
    declared = [(f"parameter {p.name!r}", p.type) for p in pipeline.params]
    for comp in pipeline.components:
        for port in (*comp.inputs, *comp.outputs):
            declared.append((f"port {port.name!r} of component {comp.id!r}", port.type))
    for what, type_text in declared:
        try:
            types.parse(type_text)
        except types.TypeSyntaxError as exc:
            hint = "use a type from pipec.ir.types"
            ctx.error("T107", f"{what}: {exc}", hint, pipeline.location)
            ok = False
    return ok


def _check_param(
    name: str, type_: str, required: bool, default: object, pipeline: Pipeline, ctx: PassContext
) -> None:
    if not types.is_value(type_):
        ctx.error(
            "T102",
            f"parameter {name!r} has type {type_}, which is not a value type",
            "pipeline parameters travel through every engine as JSON: use int, float, str, bool, "
            "or a list / dict of them, and load artifacts inside a step",
            pipeline.location,
        )
    elif not required and not types.check_value(default, type_):
        ctx.error(
            "T105",
            f"the default {default!r} of parameter {name!r} is not a {type_}",
            "make the default match the annotation",
            pipeline.location,
        )


def _type_of(
    binding: Binding, env: graph.TypeEnv, location: Location, ctx: PassContext
) -> str | None:
    source = env.of(binding)
    if source is None and not isinstance(binding, Const):
        ctx.error(
            "S004",
            f"{describe(binding)} does not exist",
            "the IR refers to an unknown parameter, step output or loop; re-generate it",
            location,
        )
    return source


def _compares(node: Condition) -> list[Compare]:
    found: list[Compare] = []
    stack = [node.test]
    while stack:
        expr = stack.pop()
        if isinstance(expr, Compare):
            found.append(expr)
        elif isinstance(expr, And | Or):
            stack.extend(expr.args)
        elif isinstance(expr, Not):
            stack.append(expr.arg)
    return found


def _base(text: str) -> str:
    parsed = types.parse(text)
    if parsed.name == "optional" and parsed.arg is not None:
        parsed = parsed.arg
    return "float" if parsed.name == "int" else parsed.name


def _check_compare(
    compare: Compare, env: graph.TypeEnv, location: Location, ctx: PassContext
) -> None:
    left, right = env.of(compare.left), env.of(compare.right)
    if left is None or right is None or not (types.is_value(left) and types.is_value(right)):
        return
    a, b = _base(left), _base(right)
    if "any" in (a, b):
        return
    if compare.op in ("<", "<=", ">", ">=") and (a != b or a not in _ORDERED):
        ctx.error(
            "T106",
            f"cannot order {left} and {right} with {compare.op!r} "
            f"({describe(compare.left)} vs {describe(compare.right)})",
            "compare numbers with numbers and strings with strings",
            location,
        )
    elif compare.op in ("==", "!=") and a != b and "none" not in (a, b):
        ctx.error(
            "T106",
            f"{describe(compare.left)} ({left}) is compared with {describe(compare.right)} "
            f"({right}); values of different types are never equal",
            "compare values of the same type (a bool output with True/False, not 1/0)",
            location,
        )
