"""The text form of the IR (`.pir`): `to_text` prints a `Pipeline` for people to read and review,
and `from_text` parses it back to the very same model (`from_text(to_text(p)) == p`).

The grammar is `pir.lark`, which imports the condition language from `expr.lark`; the builder here
extends the expression builder of `pipec.ir.expr`, so operands and literals are read and printed by
one piece of code. Output is deterministic: keys of arguments and env are sorted, and options are
printed in a fixed order, only when they differ from the model's defaults.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, assert_never, cast

from lark import Lark, Token
from lark.exceptions import UnexpectedInput
from pydantic import JsonValue

from pipec.ir.expr import (
    BuildError,
    ExprBuilder,
    SourceSyntaxError,
    WholeWords,
    describe_lark_error,
    format_expr,
    format_name,
    format_operand,
    format_value,
    quote,
)
from pipec.ir.model import (
    IR_VERSION,
    Binding,
    Collect,
    Component,
    Condition,
    Group,
    Location,
    Loop,
    Node,
    Param,
    Pipeline,
    Port,
    Resources,
    Step,
    TargetOptions,
)

__all__ = ["PirSyntaxError", "from_text", "to_text"]

INDENT = "  "


class PirSyntaxError(SourceSyntaxError):
    """Text that is not a valid `.pir` document; `line` and `column` say where."""


# --------------------------------------------------------------------------------------------
# Printing.


def to_text(pipeline: Pipeline) -> str:
    """The `.pir` text of a pipeline: deterministic, `\\n` line endings, one trailing newline."""
    printer = _Printer(pipeline.location.file)
    return printer.pipeline(pipeline)


_DOTTED_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def _format_dotted(path: str) -> str:
    """A module or qualified function name: bare when it is dotted identifiers."""
    return path if _DOTTED_RE.fullmatch(path) else quote(path)


@functools.lru_cache(maxsize=1024)
def _format_type(type_text: str) -> str:
    """A type string: bare when the parser rebuilds exactly this spelling, quoted otherwise."""
    return type_text if _plain_type_end(type_text, 0) == len(type_text) else quote(type_text)


def _plain_type_end(text: str, pos: int) -> int | None:
    """Where a canonical `name` / `name[arg, arg]` type starting at `pos` ends, if one does."""
    match = _DOTTED_RE.match(text, pos)
    if match is None:
        return None
    pos = match.end()
    if not text.startswith("[", pos):
        return pos
    pos += 1
    while True:
        end = _plain_type_end(text, pos)
        if end is None:
            return None
        if text.startswith(", ", end):
            pos = end + 2
        elif text.startswith("]", end):
            return end + 1
        else:
            return None


def _format_binding(binding: Binding) -> str:
    if isinstance(binding, Collect):
        step = f"steps.{format_name(binding.step)}.{format_name(binding.output)}"
        return f"collect({step}, loops.{format_name(binding.loop)})"
    return format_operand(binding)


def _format_declaration(name: str, type_text: str, required: bool, default: JsonValue) -> str:
    head = f"{format_name(name)}: {_format_type(type_text)}"
    if required and default is None:
        return head
    return f"{head} = {format_value(default)}" + (" required" if required else "")


class _Printer:
    """Writes one pipeline; knows the pipeline's file so that locations in it print as `at N`."""

    def __init__(self, pipeline_file: str) -> None:
        self.pipeline_file = pipeline_file
        self.lines: list[str] = []

    def pipeline(self, pipeline: Pipeline) -> str:
        self.lines.append(f"pir {pipeline.ir_version}")
        head = f"pipeline {format_name(pipeline.id)}{self._display_name(pipeline)}"
        location = pipeline.location
        self.lines.append(f"{head} at {quote(location.file)}:{location.line}")
        if pipeline.description is not None:
            self.lines.append(f"{INDENT}description {quote(pipeline.description)}")
        if pipeline.schedule is not None:
            self.lines.append(f"{INDENT}schedule {quote(pipeline.schedule)}")
        if pipeline.params:
            self.lines.append("")
        for param in pipeline.params:
            declaration = _format_declaration(param.name, param.type, param.required, param.default)
            self.lines.append(f"param {declaration}")
        for component in pipeline.components:
            self.lines.append("")
            self.component(component)
        if pipeline.body:
            self.lines.append("")
        self.body(pipeline.body, 0)
        return "\n".join(self.lines) + "\n"

    def component(self, component: Component) -> None:
        target = f"{_format_dotted(component.module)}:{_format_dotted(component.function)}"
        self.lines.append(f"component {format_name(component.id)} = {target}")
        self.lines.append(f"{INDENT}file {quote(component.file)}")
        self.lines.append(f"{INDENT}code {quote(component.code_hash)}")
        if component.unhashed:
            self.lines.append(f"{INDENT}unhashed {', '.join(quote(u) for u in component.unhashed)}")
        if component.returns != "single":
            self.lines.append(f"{INDENT}returns {component.returns}")
        for keyword, ports in (("input", component.inputs), ("output", component.outputs)):
            for port in ports:
                declaration = _format_declaration(port.name, port.type, port.required, port.default)
                self.lines.append(f"{INDENT}{keyword} {declaration}")

    def body(self, body: Sequence[Node], depth: int) -> None:
        for node in body:
            match node:
                case Step():
                    self.step(node, depth)
                case Condition():
                    test = format_expr(node.test)
                    head = f"when {format_name(node.id)} ({test}) at {self._location(node)}"
                    self.block(head, node.then, depth)
                    if node.otherwise:
                        # `} otherwise {`, or `... {} otherwise {` after an empty `then`.
                        closing = self.lines.pop().strip()
                        self.block(f"{closing} otherwise", node.otherwise, depth)
                case Loop():
                    head = f"foreach {format_name(node.id)} in {_format_binding(node.items)}"
                    if node.parallelism is not None:
                        head += f" parallelism {node.parallelism}"
                    self.block(f"{head} at {self._location(node)}", node.body, depth)
                case Group():
                    head = f"group {format_name(node.id)} pipeline {format_name(node.pipeline)}"
                    self.block(f"{head} at {self._location(node)}", node.body, depth)
                case _:
                    assert_never(node)

    def block(self, head: str, body: Sequence[Node], depth: int) -> None:
        """`head {`, the body one level deeper, `}` (or `head {}` when the body is empty)."""
        indent = INDENT * depth
        if not body:
            self.lines.append(f"{indent}{head} {{}}")
            return
        self.lines.append(f"{indent}{head} {{")
        self.body(body, depth + 1)
        self.lines.append(f"{indent}}}")

    def step(self, step: Step, depth: int) -> None:
        indent = INDENT * depth
        arguments = ", ".join(
            f"{format_name(key)}={_format_binding(step.args[key])}" for key in sorted(step.args)
        )
        call = f"{format_name(step.component)}({arguments})"
        head = f"step {format_name(step.id)}{self._display_name(step)} = {call}"
        self.lines.append(f"{indent}{head} at {self._location(step)}")
        self.lines.extend(f"{indent}{INDENT}{option}" for option in _step_options(step))

    def _location(self, node: Step | Condition | Loop | Group) -> str:
        location = node.location
        if location.file == self.pipeline_file:
            return str(location.line)
        return f"{quote(location.file)}:{location.line}"

    @staticmethod
    def _display_name(node: Pipeline | Step) -> str:
        return "" if node.name == node.id else f" {quote(node.name)}"


def _step_options(step: Step) -> list[str]:
    """The step's options that differ from the defaults, in a fixed order; then each target's
    own options (`on TARGET { ... }`), by target name."""
    options: list[str] = []
    if step.after:
        options.append("after " + ", ".join(format_name(s) for s in step.after))
    options.extend(_run_options(step))
    for target in sorted(step.targets):
        inner = "".join(f"{option} " for option in _run_options(step.targets[target]))
        options.append(f"on {format_name(target)} {{ {inner}}}")
    return options


def _run_options(step: Step | TargetOptions) -> list[str]:
    """The options (other than `after`) that differ from the defaults, in a fixed order."""
    options: list[str] = []
    if step.image is not None:
        options.append(f"image {quote(step.image)}")
    resources = step.resources
    if resources.cpu is not None:
        options.append(f"cpu {format_value(resources.cpu)}")
    if resources.memory is not None:
        options.append(f"memory {quote(resources.memory)}")
    if resources.gpu is not None:
        options.append(f"gpu {resources.gpu}")
    if resources.gpu_type is not None:
        options.append(f"gpu_type {quote(resources.gpu_type)}")
    if resources.disk is not None:
        options.append(f"disk {quote(resources.disk)}")
    if step.retries != 0:
        options.append(f"retries {step.retries}")
    if step.retry_delay != 0.0 or math.copysign(1.0, step.retry_delay) < 0:  # -0.0 is kept too
        options.append(f"retry_delay {format_value(step.retry_delay)}")
    if step.timeout is not None:
        options.append(f"timeout {format_value(step.timeout)}")
    if not step.cache:
        options.append("cache false")
    if step.secrets:
        options.append("secrets " + ", ".join(format_name(s) for s in step.secrets))
    options.extend(f"env {format_name(key)} = {quote(step.env[key])}" for key in sorted(step.env))
    return options


# --------------------------------------------------------------------------------------------
# Parsing.

# The file of the pipeline being parsed: a bare `at N` means line N of it.
_PIPELINE_FILE: ContextVar[str | None] = ContextVar("pipec_pir_pipeline_file", default=None)

_RESOURCE_FIELDS = frozenset({"cpu", "memory", "gpu", "gpu_type", "disk"})
_LIST_FIELDS = frozenset({"after", "secrets"})


def _option_fields(options: Sequence[_Option]) -> dict[str, Any]:
    """The Step (or TargetOptions) fields a list of parsed options sets; BuildError for one
    given twice."""
    fields: dict[str, Any] = {}
    resources: dict[str, Any] = {}
    lists: dict[str, list[str]] = {}
    env: dict[str, str] = {}
    for option in options:
        if option.field in _LIST_FIELDS:
            lists.setdefault(option.field, []).extend(option.value)
        elif option.field == "env":
            key, value = option.value
            if key.value in env:
                raise BuildError(f"env {format_name(key.value)} is set twice", key)
            env[key.value] = value
        else:
            target = resources if option.field in _RESOURCE_FIELDS else fields
            if option.field in target:
                raise BuildError(f"option {option.field} is given twice", option.keyword)
            target[option.field] = option.value
    fields.update({name: tuple(values) for name, values in lists.items()})
    return {**fields, "env": env, "resources": Resources(**resources)}


@dataclass(frozen=True)
class _Option:
    """One step option as written: the field it sets, its value, and its keyword (for errors)."""

    field: str
    value: Any
    keyword: Token


@dataclass(frozen=True)
class _Declaration:
    name: str
    type: str
    required: bool
    default: JsonValue


class _PirBuilder(ExprBuilder):
    """Builds the `Pipeline` while lark parses `pir.lark` (expression rules come from the base)."""

    def __getattr__(self, attribute: str) -> Any:
        # lark namespaces what pir.lark imports from expr.lark (`expr__const`, `expr__null`...);
        # those are the expression builder's methods. lark looks callbacks up once, when the
        # parser is built, so this costs nothing while parsing.
        if attribute.startswith("expr__"):
            return getattr(self, attribute.removeprefix("expr__"))
        raise AttributeError(attribute)

    def text(self, children: list[Token]) -> str:
        return self.string(children)

    def integer(self, children: list[Token]) -> int:
        number = self.number(children)
        if not isinstance(number, int):
            raise BuildError(f"expected a whole number, got {children[0].value}", children[0])
        return number

    def start(self, children: list[Any]) -> Pipeline:
        header, *declarations, body = children
        return Pipeline(
            **header,
            params=tuple(item for item in declarations if isinstance(item, Param)),
            components=tuple(item for item in declarations if isinstance(item, Component)),
            body=body,
        )

    def header(self, children: list[Any]) -> dict[str, Any]:
        version, pipeline_id, display, file, line, description, schedule = children
        if version.value != str(IR_VERSION):
            problem = f"this pipec reads pir {IR_VERSION}, not pir {version.value}"
            raise BuildError(problem, version)
        _PIPELINE_FILE.set(file)
        return {
            "id": pipeline_id,
            "name": pipeline_id if display is None else display,
            "location": Location(file=file, line=line),
            "description": description,
            "schedule": schedule,
        }

    def required_declaration(self, children: list[Any]) -> _Declaration:
        default = children[2] if len(children) > 2 else None
        return _Declaration(children[0], children[1], True, default)

    def optional_declaration(self, children: list[Any]) -> _Declaration:
        return _Declaration(children[0], children[1], False, children[2])

    def param(self, children: list[_Declaration]) -> Param:
        (declaration,) = children
        return Param(**vars(declaration))

    def input_port(self, children: list[_Declaration]) -> tuple[str, Port]:
        return "input", Port(**vars(children[0]))

    def output_port(self, children: list[_Declaration]) -> tuple[str, Port]:
        return "output", Port(**vars(children[0]))

    def plain_type(self, children: list[str]) -> str:
        return children[0]

    def generic_type(self, children: list[str]) -> str:
        return f"{children[0]}[{', '.join(children[1:])}]"

    def quoted_type(self, children: list[str]) -> str:
        return children[0]

    def dotted_name(self, children: list[Token]) -> str:
        return ".".join(token.value for token in children)

    def module_path(self, children: list[str]) -> str:
        return children[0]

    def returns(self, children: list[Token]) -> str:
        kind = str(children[0])
        if kind not in ("single", "named", "none"):
            raise BuildError(f"expected single, named or none, got {kind!r}", children[0])
        return kind

    def unhashed(self, children: list[str]) -> tuple[str, ...]:
        return tuple(children)

    def component(self, children: list[Any]) -> Component:
        component_id, module, function, file, code_hash, *rest = children
        unhashed: tuple[str, ...] = ()
        if rest and isinstance(rest[0], tuple) and all(isinstance(u, str) for u in rest[0]):
            unhashed, rest = rest[0], rest[1:]
        returns, *ports = rest
        return Component(
            id=component_id,
            module=module,
            function=function,
            file=file,
            code_hash=code_hash,
            unhashed=unhashed,
            inputs=tuple(port for kind, port in ports if kind == "input"),
            outputs=tuple(port for kind, port in ports if kind == "output"),
            returns="single" if returns is None else returns,
        )

    def body(self, children: list[Node]) -> tuple[Node, ...]:
        return tuple(children)

    def step(self, children: list[Any]) -> Step:
        step_id, display, component, arguments, location, *options = children
        targets: dict[str, TargetOptions] = {}
        own: list[_Option] = []
        for option in options:
            if option.field != "on":
                own.append(option)
                continue
            name, inner = option.value
            if name.value in targets:
                given = f"options for target {format_name(name.value)} are given twice"
                raise BuildError(given, name)
            fields = _option_fields(inner)
            if "after" in fields:
                raise BuildError("after is the same on every target", option.keyword)
            targets[name.value] = TargetOptions(**fields)
        return Step(
            id=step_id,
            name=step_id if display is None else display,
            component=component,
            args=arguments,
            location=location,
            targets=targets,
            **_option_fields(own),
        )

    def arguments(self, children: list[tuple[Token, Binding] | None]) -> dict[str, Binding]:
        result: dict[str, Binding] = {}
        for item in children:
            if item is None:  # the placeholder of `f()`
                continue
            key, binding = item
            if key.value in result:
                raise BuildError(f"argument {format_name(key.value)} is given twice", key)
            result[key.value] = binding
        return result

    def argument(self, children: list[Any]) -> tuple[Token, Binding]:
        return children[0], children[1]

    def collect(self, children: list[str]) -> Collect:
        return Collect(step=children[0], output=children[1], loop=children[2])

    def list_option(self, children: list[Token]) -> _Option:
        keyword, *names = children
        return _Option(keyword.value, [name.value for name in names], keyword)

    def target_option(self, children: list[Any]) -> _Option:
        keyword, name, *options = children
        return _Option("on", (name, options), keyword)

    def env_option(self, children: list[Any]) -> _Option:
        keyword, key, value = children
        return _Option("env", (key, value), keyword)

    def text_option(self, children: list[Any]) -> _Option:
        return _Option(children[0].value, children[1], children[0])

    number_option = integer_option = boolean_option = text_option

    def condition(self, children: list[Any]) -> Condition:
        condition_id, test, location, then, otherwise = children
        return Condition(
            id=condition_id, test=test, then=then, otherwise=otherwise or (), location=location
        )

    def loop(self, children: list[Any]) -> Loop:
        loop_id, items, parallelism, location, body = children
        return Loop(id=loop_id, items=items, parallelism=parallelism, body=body, location=location)

    def group(self, children: list[Any]) -> Group:
        group_id, pipeline, location, body = children
        return Group(id=group_id, pipeline=pipeline, body=body, location=location)

    def full_location(self, children: list[Any]) -> Location:
        return Location(file=children[0], line=children[1])

    def short_location(self, children: list[int]) -> Location:
        file = _PIPELINE_FILE.get()
        # The grammar puts the pipeline's own (full) location first, so the file is known here.
        assert file is not None
        return Location(file=file, line=children[0])


@functools.cache
def _parser() -> Lark:
    """The `.pir` parser, built once (building the LALR tables is the slow part)."""
    return Lark.open_from_package(
        "pipec.ir",
        "pir.lark",
        parser="lalr",
        transformer=_PirBuilder(),
        postlex=WholeWords(),
        maybe_placeholders=True,
    )


def from_text(text: str) -> Pipeline:
    """Parse `.pir` text; raise `PirSyntaxError` (with line and column) when it is not valid."""
    parser = _parser()
    reset = _PIPELINE_FILE.set(None)
    try:
        # The builder turns the whole parse into a `Pipeline` (lark's annotation says tree).
        pipeline = cast(Pipeline, parser.parse(text))
    except UnexpectedInput as exc:
        line, column, problem = describe_lark_error(exc, text, parser)
        raise PirSyntaxError(problem, line, column, text) from None
    except BuildError as exc:
        raise PirSyntaxError(
            exc.problem, exc.token.line or 0, exc.token.column or 0, text
        ) from None
    finally:
        _PIPELINE_FILE.reset(reset)
    return pipeline
