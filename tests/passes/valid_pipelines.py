"""Hypothesis strategy for random *valid* pipelines over a few arithmetic components, and a
reference interpreter that says which calls a pipeline makes.

`tests/ir_strategies.py` draws pipelines that are only shaped right (for round trips); the
optimizer needs pipelines that validate, and that give it work: literal and parameter conditions,
loops over literals (some empty), parameters and outputs, collects, nested groups, repeated calls
(for merging), chains (for fusion), `cache=False` steps, other images, `.after()`.

`calls(pipeline, params)` runs a pipeline in the interpreter: every step instance that runs is
one call of its function with concrete arguments (a fused chain runs its members from its
`chain` input, as the runtime does). Two pipelines do the same work when they make the same set
of cacheable calls and the same multiset of `cache=False` calls.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from pipec.backends.runtime import chain
from pipec.ir import evaluate, graph
from pipec.ir.graph import Scope
from pipec.ir.model import (
    And,
    Binding,
    Collect,
    Compare,
    Component,
    Condition,
    Const,
    Expr,
    Group,
    Location,
    Loop,
    LoopItem,
    Node,
    Not,
    Operand,
    Or,
    OutputRef,
    Param,
    ParamRef,
    Pipeline,
    Port,
    Step,
)

PRIME = 1_000_003
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "inc": lambda x: (x * 31 + 7) % PRIME,
    "add": lambda a, b: (a * 17 + b * 13 + 5) % PRIME,
    "total": lambda xs: (sum(xs) * 7 + len(xs)) % PRIME,
    "items": lambda n: [(n * 3 + i) % PRIME for i in range(n % 3)],
    "side": lambda x: None,
}
SIGNATURES: dict[str, tuple[dict[str, str], str | None]] = {
    "inc": ({"x": "int"}, "int"),
    "add": ({"a": "int", "b": "int"}, "int"),
    "total": ({"xs": "list[int]"}, "int"),
    "items": ({"n": "int"}, "list[int]"),
    "side": ({"x": "int"}, None),
}
COMPONENTS = tuple(
    Component(
        id=name,
        module="arith",
        function=name,
        file="arith.py",
        code_hash=f"sha256:{name}",
        inputs=tuple(Port(name=k, type=t) for k, t in ins.items()),
        outputs=(Port(name="output", type=out),) if out else (),
        returns="single" if out else "none",
    )
    for name, (ins, out) in SIGNATURES.items()
)
PARAMS = (
    Param(name="n", type="int", required=False, default=2),
    Param(name="flag", type="bool", required=False, default=True),
    Param(name="xs", type="list[int]", required=False, default=[1, 2]),
)
OTHER_PARAMS = {"n": 4, "flag": False, "xs": []}


@dataclass
class _Env:
    """What a node being drawn may read: int and list[int] values, and collectable outputs."""

    ints: list[Binding] = field(default_factory=list)
    lists: list[Binding] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)  # visible steps, for repeated calls

    def copy(self) -> _Env:
        return _Env(list(self.ints), list(self.lists), list(self.steps))


@dataclass
class _Ids:
    counter: int = 0
    all_steps: list[str] = field(default_factory=list)

    def next(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_{self.counter}"


def _at(draw: st.DrawFn) -> Location:
    return Location(file="p.py", line=draw(st.integers(1, 60)))


@st.composite
def valid_pipelines(draw: st.DrawFn) -> Pipeline:
    """A pipeline that validates (see the module docstring)."""
    env = _Env(
        ints=[ParamRef(param="n"), Const(value=0), Const(value=1), Const(value=2)],
        lists=[ParamRef(param="xs"), Const(value=[]), Const(value=[3, 4, 5])],
    )
    ids = _Ids()
    body = _body(draw, env, ids, depth=0, loops=0)
    return Pipeline(
        name="p",
        id="p",
        params=PARAMS,
        components=COMPONENTS,
        body=body,
        location=Location(file="p.py", line=1),
    )


def _body(draw: st.DrawFn, env: _Env, ids: _Ids, depth: int, loops: int) -> tuple[Node, ...]:
    nodes: list[Node] = []
    for _ in range(draw(st.integers(1 if depth else 2, 5 if depth < 2 else 3))):
        kinds = ["step", "step", "step", "repeat"] + (
            ["condition", "loop", "group"] if depth < 3 else []
        )
        kind = draw(st.sampled_from(kinds))
        if kind == "repeat" and env.steps:
            nodes.append(_repeat(draw, env, ids))
        elif kind in ("step", "repeat"):
            nodes.append(_step(draw, env, ids))
        elif kind == "condition":
            nodes.append(_condition(draw, env, ids, depth, loops))
        elif kind == "loop":
            nodes.extend(_loop(draw, env, ids, depth, loops))
        else:
            nodes.append(
                Group(
                    id=ids.next("group"),
                    pipeline="sub",
                    body=_body(draw, env, ids, depth + 1, loops),  # groups hide nothing
                    location=_at(draw),
                )
            )
    return tuple(nodes)


def _options(draw: st.DrawFn, ids: _Ids) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if draw(st.integers(0, 5)) == 0:
        options["cache"] = False
    if draw(st.integers(0, 5)) == 0:
        options["image"] = draw(st.sampled_from(["a:1", "b:1"]))
    if draw(st.integers(0, 9)) == 0:
        options["timeout"] = 30.0
    if ids.all_steps and draw(st.integers(0, 7)) == 0:
        options["after"] = (draw(st.sampled_from(ids.all_steps)),)
    return options


def _step(draw: st.DrawFn, env: _Env, ids: _Ids) -> Step:
    function = draw(st.sampled_from(sorted(SIGNATURES)))
    inputs, output = SIGNATURES[function]
    args = {
        name: draw(st.sampled_from(env.ints if t == "int" else env.lists))
        for name, t in inputs.items()
    }
    step_id = ids.next(function)
    step = Step(
        id=step_id,
        name=step_id,
        component=function,
        args=args,
        location=_at(draw),
        **_options(draw, ids),
    )
    _produced(step, output, env, ids)
    return step


def _repeat(draw: st.DrawFn, env: _Env, ids: _Ids) -> Step:
    """The same call as a visible step (work to merge), under a new id."""
    like = draw(st.sampled_from(env.steps))
    step_id = ids.next(like.component)
    step = like.model_copy(update={"id": step_id, "name": step_id, "location": _at(draw)})
    _produced(step, SIGNATURES[like.component][1], env, ids)
    return step


def _produced(step: Step, output: str | None, env: _Env, ids: _Ids) -> None:
    ids.all_steps.append(step.id)
    env.steps.append(step)
    if output == "int":
        env.ints.append(OutputRef(step=step.id, output="output"))
    elif output == "list[int]":
        env.lists.append(OutputRef(step=step.id, output="output"))


def _operand(draw: st.DrawFn, env: _Env) -> Operand:
    chosen = draw(st.sampled_from([b for b in env.ints if not isinstance(b, Collect)]))
    assert not isinstance(chosen, Collect)
    return chosen


def _test(draw: st.DrawFn, env: _Env, depth: int = 0) -> Expr:
    choice = draw(st.integers(0, 5 if depth < 2 else 2))
    if choice == 0:
        return ParamRef(param="flag")
    if choice in (1, 2):
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        return Compare(op=op, left=_operand(draw, env), right=_operand(draw, env))
    if choice == 3:
        return Not(arg=_test(draw, env, depth + 1))
    args = tuple(_test(draw, env, depth + 1) for _ in range(draw(st.integers(2, 3))))
    return And(args=args) if choice == 4 else Or(args=args)


def _condition(draw: st.DrawFn, env: _Env, ids: _Ids, depth: int, loops: int) -> Condition:
    test = _test(draw, env)
    then = _body(draw, env.copy(), ids, depth + 1, loops)
    otherwise = _body(draw, env.copy(), ids, depth + 1, loops) if draw(st.booleans()) else ()
    return Condition(
        id=ids.next("condition"), test=test, then=then, otherwise=otherwise, location=_at(draw)
    )


def _loop(draw: st.DrawFn, env: _Env, ids: _Ids, depth: int, loops: int) -> list[Node]:
    loop_id = ids.next("loop")
    inner = env.copy()
    inner.ints.append(LoopItem(loop=loop_id))
    items = draw(st.sampled_from(env.lists))
    body = _body(draw, inner, ids, depth + 1, loops + 1)
    loop = Loop(
        id=loop_id,
        items=items,
        parallelism=draw(st.sampled_from([None, 2])),
        body=body,
        location=_at(draw),
    )
    # Collect an int output of a step directly in the body (C004: not from a nested block).
    direct = [n for n in body if isinstance(n, Step) and SIGNATURES[n.component][1] == "int"]
    nodes: list[Node] = [loop]
    if direct and draw(st.booleans()):
        collected = Collect(step=draw(st.sampled_from(direct)).id, output="output", loop=loop_id)
        env.lists.append(collected)
        step_id = ids.next("total")
        total = Step(
            id=step_id, name=step_id, component="total", args={"xs": collected}, location=_at(draw)
        )
        _produced(total, "int", env, ids)
        nodes.append(total)
    return nodes


# ------------------------------------------------------------------------------ interpreter


class Interpreter:
    """Runs a pipeline's calls lazily, each step instance once (see the module docstring)."""

    def __init__(self, pipeline: Pipeline, params: dict[str, Any]) -> None:
        self.params = {p.name: p.default for p in pipeline.params} | params
        self.components = graph.components(pipeline)
        self.scopes = graph.node_scopes(pipeline)
        self.nodes = {n.id: n for n, _ in graph.walk(pipeline.body)}
        self.pipeline = pipeline
        self.done: dict[tuple[str, tuple[int, ...]], dict[str, Any] | None] = {}
        self.cached: set[tuple[str, str]] = set()
        self.uncached: Counter[tuple[str, str]] = Counter()

    def run(self) -> None:
        self._body(self.pipeline.body, ())

    def _body(self, body: tuple[Node, ...], ctx: tuple[int, ...]) -> None:
        for node in body:
            match node:
                case Step():
                    self.step(node.id, ctx)
                case Condition():
                    if self._holds(node, ctx):
                        self._body(node.then, ctx)
                    else:
                        self._body(node.otherwise, ctx)
                case Loop():
                    for i in range(len(self._items(node, ctx))):
                        self._body(node.body, (*ctx, i))
                case Group():
                    self._body(node.body, ctx)

    def _loops(self, node_id: str) -> list[Scope]:
        return [s for s in self.scopes[node_id] if s.kind == "loop"]

    def _holds(self, node: Condition, ctx: tuple[int, ...]) -> bool:
        return evaluate.holds(node.test, lambda ref: self.value(ref, ctx))

    def _items(self, loop: Loop, ctx: tuple[int, ...]) -> list[Any]:
        items = self.value(loop.items, ctx[: len(self._loops(loop.id))])
        assert isinstance(items, list)
        return items

    def step(self, step_id: str, ctx: tuple[int, ...]) -> dict[str, Any] | None:
        """The outputs of a step instance (None when a condition skips it)."""
        ctx = ctx[: len(self._loops(step_id))]
        key = (step_id, ctx)
        if key in self.done:
            return self.done[key]
        self.done[key] = None
        for scope in self.scopes[step_id]:
            if scope.kind == "condition":
                cond = self.nodes[scope.id]
                assert isinstance(cond, Condition)
                here = ctx[: len(self._loops(scope.id))]
                if self._holds(cond, here) != (scope.branch == "then"):
                    return None
        step = self.nodes[step_id]
        assert isinstance(step, Step)
        args = {name: self.value(b, ctx) for name, b in step.args.items()}
        component = self.components[step.component]
        if component.module == chain.COMPONENT_MODULE:
            outputs = self._chain(args, step.cache)
        else:
            result = self._call(component.function, args, step.cache)
            outputs = {"output": result} if component.returns == "single" else {}
        self.done[key] = outputs
        return outputs

    def _call(self, function: str, args: dict[str, Any], cache: bool) -> Any:
        call = (function, repr(sorted(args.items())))
        if cache:
            self.cached.add(call)
        else:
            self.uncached[call] += 1
        return FUNCTIONS[function](**args)

    def _chain(self, args: dict[str, Any], cache: bool) -> dict[str, Any]:
        ports: dict[str, Any] = {}
        produced: dict[tuple[str, str], Any] = {}
        for member in args[chain.SPEC_INPUT]["steps"]:
            own = {
                name: args[ref["input"]] if "input" in ref else produced[ref["step"], ref["output"]]
                for name, ref in member["inputs"].items()
            }
            function = member["component"].partition(":")[2]
            result = self._call(function, own, cache)
            for output, port in member["outputs"].items():
                produced[member["id"], output] = ports[port] = result
        return ports

    def value(self, binding: Binding, ctx: tuple[int, ...]) -> Any:
        match binding:
            case Const():
                return binding.value
            case ParamRef():
                return self.params[binding.param]
            case LoopItem():
                loop = self.nodes[binding.loop]
                assert isinstance(loop, Loop)
                depth = len(self._loops(loop.id))
                return self._items(loop, ctx[:depth])[ctx[depth]]
            case OutputRef():
                outputs = self.step(binding.step, ctx)
                assert outputs is not None, f"{binding.step} read but skipped"
                return outputs[binding.output]
            case Collect():
                loop = self.nodes[binding.loop]
                assert isinstance(loop, Loop)
                depth = len(self._loops(loop.id))
                found = []
                for i in range(len(self._items(loop, ctx[:depth]))):
                    outputs = self.step(binding.step, (*ctx[:depth], i))
                    assert outputs is not None
                    found.append(outputs[binding.output])
                return found


def calls(pipeline: Pipeline, params: dict[str, Any]) -> tuple[set[Any], Counter[Any]]:
    """The cacheable calls (a set) and the `cache=False` calls (a multiset) a run makes."""
    interpreter = Interpreter(pipeline, params)
    interpreter.run()
    return interpreter.cached, interpreter.uncached
