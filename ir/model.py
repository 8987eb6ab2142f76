"""The IR models: a typed, frozen, target-neutral description of one pipeline.

Everything an engine needs to know about a pipeline is here and nothing about any engine is:
parameters, components (the Python functions steps call), steps (call sites with their options),
bindings (where each input comes from), scopes (conditions, loops, nested-pipeline groups), explicit
ordering, and the source location of every node for diagnostics.

The tree mirrors what the user wrote: a pipeline body is a sequence of nodes, and conditions, loops
and groups hold bodies of their own. Step ids are unique in the whole pipeline, so bindings name a
step by id alone wherever it sits.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SerializerFunctionWrapHandler,
    model_serializer,
)

IR_VERSION = 1


class Model(BaseModel):
    """Base of every IR model: frozen, and unknown fields are an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Location(Model):
    """Where a node was written: a path relative to the project root and a 1-based line."""

    file: str
    line: int


# --------------------------------------------------------------------------------------------
# Bindings: where a value comes from.


class Const(Model):
    """A literal value (JSON-able) written in the pipeline."""

    kind: Literal["const"] = "const"
    value: JsonValue


class ParamRef(Model):
    """A pipeline parameter, overridable at run time."""

    kind: Literal["param"] = "param"
    param: str


class OutputRef(Model):
    """One output of a step."""

    kind: Literal["output"] = "output"
    step: str
    output: str


class LoopItem(Model):
    """The current item of an enclosing `foreach` loop."""

    kind: Literal["item"] = "item"
    loop: str


class Collect(Model):
    """Fan-in: the list of one output of a step over every iteration of `loop`."""

    kind: Literal["collect"] = "collect"
    step: str
    output: str
    loop: str


Operand = Annotated[Const | ParamRef | OutputRef | LoopItem, Field(discriminator="kind")]
Binding = Annotated[Const | ParamRef | OutputRef | LoopItem | Collect, Field(discriminator="kind")]


# --------------------------------------------------------------------------------------------
# Condition expressions.

CompareOp = Literal["==", "!=", "<", "<=", ">", ">="]


class Compare(Model):
    """`left op right` on two operands."""

    kind: Literal["compare"] = "compare"
    op: CompareOp
    left: Operand
    right: Operand


class And(Model):
    """All of `args` hold."""

    kind: Literal["and"] = "and"
    args: tuple[Expr, ...]


class Or(Model):
    """At least one of `args` holds."""

    kind: Literal["or"] = "or"
    args: tuple[Expr, ...]


class Not(Model):
    """`arg` does not hold."""

    kind: Literal["not"] = "not"
    arg: Expr


Expr = Annotated[
    Const | ParamRef | OutputRef | LoopItem | Compare | And | Or | Not,
    Field(discriminator="kind"),
]


# --------------------------------------------------------------------------------------------
# Components: the Python functions that steps call.


class Port(Model):
    """One input or output of a component. `type` is a type string (see `pipec.ir.types`)."""

    name: str
    type: str
    required: bool = True
    default: JsonValue = None


class Component(Model):
    """A user function, described well enough to import and call it anywhere.

    `module` is the dotted module name relative to the project root and `function` the qualified
    name inside it. `returns` says how the return value maps to outputs: a single value named
    `output`, the fields of a NamedTuple, or nothing. `code_hash` covers the function and what it
    uses from its module (`pipec.ir.code`); `unhashed` names what it uses that could not be hashed
    by value, so no cache treats the step's code as unchanged.
    """

    id: str
    module: str
    function: str
    file: str
    code_hash: str
    unhashed: tuple[str, ...] = ()
    inputs: tuple[Port, ...] = ()
    outputs: tuple[Port, ...] = ()
    returns: Literal["single", "named", "none"] = "single"


# --------------------------------------------------------------------------------------------
# Nodes.


class Resources(Model):
    """What one step asks of the machine it runs on. Memory and disk use Kubernetes quantities."""

    cpu: float | None = None
    memory: str | None = None
    gpu: int | None = None
    gpu_type: str | None = None
    disk: str | None = None


class TargetOptions(Model):
    """A step's options on one target (`with_options(targets={"vertex": {...}})`): every option
    as that target sees it (the step's own, with the ones given for the target in their place).
    """

    image: str | None = None
    resources: Resources = Resources()
    retries: int = 0
    retry_delay: float = 0.0
    timeout: float | None = None
    cache: bool = True
    secrets: tuple[str, ...] = ()
    env: dict[str, str] = {}


class Step(Model):
    """One call of a component, with its inputs bound and its options set.

    `id` is the engine-safe identifier (unique in the pipeline); `name` is what the user sees.
    Durations are in seconds. `targets` holds the options of the targets given options of their
    own; compiling for a target puts that target's in the step's fields and empties `targets`
    (passes/targets.py), so no backend ever sees it.
    """

    kind: Literal["step"] = "step"
    id: str
    name: str
    component: str
    args: dict[str, Binding] = {}
    after: tuple[str, ...] = ()
    image: str | None = None
    resources: Resources = Resources()
    retries: int = 0
    retry_delay: float = 0.0
    timeout: float | None = None
    cache: bool = True
    secrets: tuple[str, ...] = ()
    env: dict[str, str] = {}
    targets: dict[str, TargetOptions] = {}
    location: Location

    @model_serializer(mode="wrap")
    def _without_empty_targets(self, handler: SerializerFunctionWrapHandler) -> Any:
        """`targets` is written only when a step has some, so the JSON of every pipeline that
        uses no per-target options stays as it was before they existed."""
        data = handler(self)
        if not self.targets and isinstance(data, dict):
            data.pop("targets", None)
        return data


class Condition(Model):
    """`when(test)`: `then` runs when the test holds, `otherwise` when it does not."""

    kind: Literal["condition"] = "condition"
    id: str
    test: Expr
    then: tuple[Node, ...] = ()
    otherwise: tuple[Node, ...] = ()
    location: Location


class Loop(Model):
    """`foreach(items)`: `body` runs once per item, at most `parallelism` at a time."""

    kind: Literal["loop"] = "loop"
    id: str
    items: Binding
    parallelism: int | None = None
    body: tuple[Node, ...] = ()
    location: Location


class Group(Model):
    """A nested pipeline, inlined: its steps read the caller's bindings directly."""

    kind: Literal["group"] = "group"
    id: str
    pipeline: str
    body: tuple[Node, ...] = ()
    location: Location


Node = Annotated[Step | Condition | Loop | Group, Field(discriminator="kind")]


class Param(Model):
    """A pipeline parameter with its type and (when not required) default."""

    name: str
    type: str
    required: bool = True
    default: JsonValue = None


class Pipeline(Model):
    """The root: one pipeline, versioned."""

    ir_version: Literal[1] = 1
    name: str
    id: str
    description: str | None = None
    schedule: str | None = None
    params: tuple[Param, ...] = ()
    components: tuple[Component, ...] = ()
    body: tuple[Node, ...] = ()
    location: Location


# --------------------------------------------------------------------------------------------
# Diagnostics (errors and warnings about a pipeline; `pipec.ir.diagnostics` has the exceptions).

Severity = Literal["error", "warning"]


class Droppable(Model):
    """What removing one option from one node would resolve: the target cannot express `what`
    (the words after "cannot express"), which option `option` of node `node` asks for
    (`--set unsupported=warn` drops it; `pipec.backends.lowerings.drop` names the options)."""

    node: str
    option: str
    what: str


class Diagnostic(Model):
    """One problem found in a pipeline.

    `code` is stable (tests and users can match on it), `message` says what is wrong and `hint`
    how to fix it. `location` points at the offending call when one is known. `drop`, on an
    error a target cannot express, says which option of which node could be dropped instead
    (None: nothing can, e.g. the pipeline's shape).
    """

    code: str
    message: str
    hint: str = ""
    location: Location | None = None
    severity: Severity = "error"
    drop: Droppable | None = None

    def render(self) -> str:
        """The one-problem text shown to users: `file:line: error[CODE]: message` + hint."""
        where = f"{self.location.file}:{self.location.line}: " if self.location else ""
        text = f"{where}{self.severity}[{self.code}]: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


for _model in (And, Or, Not, Compare, Condition, Loop, Group, Pipeline):
    _model.model_rebuild()
