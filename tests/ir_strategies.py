"""Hypothesis strategies for random, valid-shaped IR models, shared by every IR round-trip test.

`pipelines()` draws whole `Pipeline` models: random nesting of conditions, loops and groups, every
kind of binding and expression, JSON values of any shape (unicode, quotes, newlines, template
syntax such as `{{ }}` and `$(...)`, floats such as 1e-300 and -0.0), and every step option. The
models are *shaped* like pipelines (the pydantic models accept them) but need not make sense:
references may point nowhere and names may be any text, which is what round-trip tests want.
"""

from __future__ import annotations

from hypothesis import strategies as st

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
    Resources,
    Step,
    TargetOptions,
)

__all__ = [
    "bindings",
    "exprs",
    "hostile_texts",
    "json_values",
    "names",
    "operands",
    "pipelines",
    "steps",
]

# Text that has broken serializers and templating before: quotes, escapes, comments, templates,
# shell substitutions, keywords of the text form, invisible and line-breaking characters.
_NASTY = (
    "",
    " ",
    '"',
    "\\",
    '\\"',
    "\n",
    "\r\n",
    "\t",
    "\x00",
    "\x1f\x7f\x85",
    "\u2028\u2029",
    "\u200b\u200d\ufeff",
    "# not a comment",
    "{{ params.x }}",
    "{% raw %}",
    "$(rm -rf /)",
    "${{ github.token }}",
    "'single'",
    "and",
    "not",
    "params",
    "steps",
    "step",
    "true",
    "null",
    "item",
    "collect",
    "1e5",
    "-1",
    "a.b",
    "a:b",
    "é ü ß",
    "日本語",
    "😀👍🏽",
    "e\u0301",
    "\U000e0001",
)

_IDENT_RE = r"[a-z][a-z0-9_]{0,11}"


def hostile_texts() -> st.SearchStrategy[str]:
    """Any text, biased towards characters and snippets that need quoting or escaping."""
    pieces = st.one_of(
        st.sampled_from(_NASTY),
        st.text(max_size=8),
        st.text(alphabet='"\\\n\t #{}$()[],.:=', max_size=6),
    )
    return st.lists(pieces, max_size=3).map("".join)


def names() -> st.SearchStrategy[str]:
    """Mostly identifiers (as the compiler makes them), sometimes any text."""
    idents = st.from_regex(_IDENT_RE, fullmatch=True)
    return st.one_of(idents, idents, idents, hostile_texts())


def _floats() -> st.SearchStrategy[float]:
    # Non-finite floats are left out: canonical JSON writes them as null, so they cannot round-trip.
    specials = st.sampled_from([0.0, -0.0, 1e-300, 5e-324, 1.7976931348623157e308, 0.1, 1e16])
    return st.one_of(specials, st.floats(allow_nan=False, allow_infinity=False))


def json_values() -> st.SearchStrategy[object]:
    """JSON values of any shape: scalars, nested lists and objects with hostile keys."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**64),
        _floats(),
        hostile_texts(),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(hostile_texts(), children, max_size=4),
        ),
        max_leaves=12,
    )


def operands() -> st.SearchStrategy[Operand]:
    """A literal or a reference to a parameter, a step output, or a loop item."""
    return st.one_of(
        st.builds(Const, value=json_values()),
        st.builds(ParamRef, param=names()),
        st.builds(OutputRef, step=names(), output=names()),
        st.builds(LoopItem, loop=names()),
    )


def bindings() -> st.SearchStrategy[Binding]:
    """Every kind of binding, fan-in included."""
    collects = st.builds(Collect, step=names(), output=names(), loop=names())
    return st.one_of(operands(), collects)


def exprs() -> st.SearchStrategy[Expr]:
    """Condition expressions, with `and` / `or` of any arity (0 and 1 too) nested any way."""
    ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
    compares = st.builds(Compare, op=ops, left=operands(), right=operands())
    leaves: st.SearchStrategy[Expr] = st.one_of(operands(), compares)

    def extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        args = st.lists(children, max_size=4).map(tuple)
        return st.one_of(
            st.builds(And, args=args), st.builds(Or, args=args), st.builds(Not, arg=children)
        )

    return st.recursive(leaves, extend, max_leaves=10)


_TYPES = (
    "int",
    "float",
    "str",
    "bool",
    "none",
    "any",
    "list[float]",
    "dict[str, list[int]]",
    "optional[str]",
    "artifact[numpy.ndarray]",
    "artifact[bytes]",
    "list",
    "dict[str,int]",
)


def type_texts() -> st.SearchStrategy[str]:
    """Type strings: canonical ones, sloppy spellings, and junk (the model takes any string)."""
    return st.one_of(st.sampled_from(_TYPES), st.sampled_from(_TYPES), hostile_texts())


def locations() -> st.SearchStrategy[Location]:
    files = st.one_of(st.sampled_from(["examples/training.py", "lib/other.py"]), hostile_texts())
    return st.builds(Location, file=files, line=st.integers(min_value=-1, max_value=10**6))


def _optional(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(st.none(), strategy)


def resources() -> st.SearchStrategy[Resources]:
    return st.builds(
        Resources,
        cpu=_optional(_floats()),
        memory=_optional(hostile_texts()),
        gpu=_optional(st.integers(min_value=0, max_value=8)),
        gpu_type=_optional(hostile_texts()),
        disk=_optional(hostile_texts()),
    )


def target_options() -> st.SearchStrategy[TargetOptions]:
    """One target's record of every option, set or left at its default."""
    non_negative = st.floats(min_value=0.0, allow_infinity=False, allow_nan=False)
    return st.builds(
        TargetOptions,
        image=_optional(hostile_texts()),
        resources=st.one_of(st.just(Resources()), resources()),
        retries=st.integers(min_value=0, max_value=10),
        retry_delay=st.one_of(st.just(0.0), st.just(-0.0), non_negative),
        timeout=_optional(non_negative),
        cache=st.booleans(),
        secrets=st.lists(names(), max_size=3).map(tuple),
        env=st.dictionaries(hostile_texts(), hostile_texts(), max_size=3),
    )


def steps() -> st.SearchStrategy[Step]:
    """Steps with random arguments and every option, set or left at its default, and options of
    their own for some targets."""
    non_negative = st.floats(min_value=0.0, allow_infinity=False, allow_nan=False)
    return st.builds(
        Step,
        id=names(),
        name=st.one_of(names(), hostile_texts()),
        component=names(),
        args=st.dictionaries(names(), bindings(), max_size=4),
        after=st.lists(names(), max_size=3).map(tuple),
        image=_optional(hostile_texts()),
        resources=st.one_of(st.just(Resources()), resources()),
        retries=st.integers(min_value=0, max_value=10),
        retry_delay=st.one_of(st.just(0.0), st.just(-0.0), non_negative),
        timeout=_optional(non_negative),
        cache=st.booleans(),
        secrets=st.lists(names(), max_size=3).map(tuple),
        env=st.dictionaries(hostile_texts(), hostile_texts(), max_size=3),
        targets=st.dictionaries(
            st.one_of(names(), st.sampled_from(["on", "vertex", "secrets"])),
            target_options(),
            max_size=2,
        ),
        location=locations(),
    )


def bodies(depth: int) -> st.SearchStrategy[tuple[Node, ...]]:
    """A body whose blocks nest at most `depth` levels deep."""
    return st.lists(nodes(depth), max_size=3).map(tuple)


def nodes(depth: int) -> st.SearchStrategy[Node]:
    if depth <= 0:
        return steps()
    inner = bodies(depth - 1)
    conditions = st.builds(
        Condition, id=names(), test=exprs(), then=inner, otherwise=inner, location=locations()
    )
    loops = st.builds(
        Loop,
        id=names(),
        items=bindings(),
        parallelism=_optional(st.integers(min_value=1, max_value=64)),
        body=inner,
        location=locations(),
    )
    groups = st.builds(Group, id=names(), pipeline=names(), body=inner, location=locations())
    return st.one_of(steps(), steps(), conditions, loops, groups)


def _declaration_fields() -> dict[str, st.SearchStrategy[object]]:
    return {
        "name": names(),
        "type": type_texts(),
        "required": st.booleans(),
        "default": json_values(),
    }


def components() -> st.SearchStrategy[Component]:
    ports = st.lists(st.builds(Port, **_declaration_fields()), max_size=3).map(tuple)
    dotted = st.from_regex(r"[a-z_][a-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}", fullmatch=True)
    return st.builds(
        Component,
        id=names(),
        module=st.one_of(dotted, hostile_texts()),
        function=st.one_of(dotted, hostile_texts()),
        file=hostile_texts(),
        code_hash=st.one_of(st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True), hostile_texts()),
        unhashed=st.lists(hostile_texts(), max_size=2).map(tuple),
        inputs=ports,
        outputs=ports,
        returns=st.sampled_from(["single", "named", "none"]),
    )


def pipelines(max_depth: int = 3) -> st.SearchStrategy[Pipeline]:
    """Whole pipelines, with blocks nested at most `max_depth` levels deep."""
    return st.builds(
        Pipeline,
        name=st.one_of(names(), hostile_texts()),
        id=names(),
        description=_optional(hostile_texts()),
        schedule=_optional(st.one_of(st.just("0 3 * * *"), hostile_texts())),
        params=st.lists(st.builds(Param, **_declaration_fields()), max_size=3).map(tuple),
        components=st.lists(components(), max_size=3).map(tuple),
        body=bodies(max_depth),
        location=locations(),
    )
