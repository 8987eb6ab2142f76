"""One table of condition tests over every printer (sqlglot's `validate_all`): each IR expression's
exact text on each target, and, for random typed values, each printed form decides the way the
local target does.

* kubeflow: the CEL text is evaluated by a CEL evaluator (tests/cel_check.py in the cel tool
  environment), with the operands as KFP hands them to a trigger policy (every number a double);
* airflow: the branch callable is generated, executed, and called with the operands as Airflow
  hands them over (parameters and XCom values as they are, a loop item as JSON text);
* github: the `if:` expression is evaluated by act (the github tool environment) as a step's
  `if:`, with each operand as the JSON text a job output holds, read with `fromJSON`. Rows GitHub
  cannot decide with Python's meaning (it compares strings ignoring case) have no expression:
  the target decides them in Python in a `-test` job.

The reference is the local target's semantics (Python's truth and comparisons, as the local
runner's `evaluate` applies them), written out here as `reference`: the local evaluator works on
plan.json dicts inside the runner and is moving into `pipec.ir`; once it is there, this test should
call it instead.

Integers stay within +-2**53: KFP carries every number as a double, exact only up to there.
"""

from __future__ import annotations

import ast
import json
import operator
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipec.backends.airflow.conditions import PythonPrinter, branch_function
from pipec.backends.common.conditions import ConditionError
from pipec.backends.github.expressions import Value, to_github
from pipec.backends.kubeflow.cel import Channel, to_cel
from pipec.ir.model import (
    And,
    Compare,
    Condition,
    Const,
    Expr,
    Location,
    LoopItem,
    Not,
    Or,
    OutputRef,
    ParamRef,
)
from tests.conftest import REPO, tool_python

CEL_CHECK = REPO / "tests" / "cel_check.py"

# The operands, their types, and how each target names them.
INT, INT2, FLT, BOOL, BOOL2, STR = (ParamRef(param=p) for p in "ijfbcs")
OUT = OutputRef(step="make", output="output")
ITEM = LoopItem(loop="loop_1")
N = ParamRef(param="n")  # optional[int]: no CEL form
TYPES = {"i": "int", "j": "int", "f": "float", "b": "bool", "c": "bool", "s": "str"}
TYPES |= {"make.output": "int", "item": "str", "n": "optional[int]"}
CHANNELS = {"make.output": "pipelinechannel--make-output", "item": "pipelinechannel--loop-item"}


def key(operand: ParamRef | OutputRef | LoopItem) -> str:
    match operand:
        case ParamRef():
            return operand.param
        case OutputRef():
            return f"{operand.step}.{operand.output}"
        case LoopItem():
            return "item"


def resolve(operand: ParamRef | OutputRef | LoopItem) -> Channel:
    name = key(operand)
    return Channel(CHANNELS.get(name, f"pipelinechannel--{name}"), TYPES[name])


def cmp(op: str, left: object, right: object) -> Compare:
    def side(x: object) -> Any:
        return x if isinstance(x, ParamRef | OutputRef | LoopItem) else Const(value=x)

    return Compare(op=op, left=side(left), right=side(right))  # type: ignore[arg-type]


def ref(name: str) -> str:
    return f"inputs.parameter_values['pipelinechannel--{name}']"


HOSTILE = 'a"b\\n$(x) }}'
MAKE = 'values["make.output"]'


def p(name: str) -> str:
    return f'params["{name}"]'


# (expression, its CEL text, its Python text); every row is also evaluated below.
ROWS: list[tuple[Expr, str, str]] = [
    (cmp(">", INT, 3), f"int({ref('i')}) > 3", f"{p('i')} > 3"),
    (cmp(">", INT, 2.5), f"{ref('i')} > 2.5", f"{p('i')} > 2.5"),
    (cmp(">=", FLT, 1), f"{ref('f')} >= 1.0", f"{p('f')} >= 1"),
    (cmp("==", INT, FLT), f"{ref('i')} == {ref('f')}", f"{p('i')} == {p('f')}"),
    (cmp("<", INT, INT2), f"int({ref('i')}) < int({ref('j')})", f"{p('i')} < {p('j')}"),
    (cmp("!=", FLT, 0.5), f"{ref('f')} != 0.5", f"{p('f')} != 0.5"),
    (cmp("<=", -1.5, FLT), f"-1.5 <= {ref('f')}", f"-1.5 <= {p('f')}"),
    (cmp("<", 2, INT), f"2 < int({ref('i')})", f"2 < {p('i')}"),
    (cmp("==", STR, "x"), f'{ref("s")} == "x"', f'{p("s")} == "x"'),
    (cmp("<", STR, "m"), f'{ref("s")} < "m"', f'{p("s")} < "m"'),
    (cmp("==", BOOL, True), f"{ref('b')} == true", f"{p('b')} == True"),
    (cmp("!=", BOOL, BOOL2), f"{ref('b')} != {ref('c')}", f"{p('b')} != {p('c')}"),
    (BOOL, ref("b"), p("b")),
    (INT, f"int({ref('i')}) != 0", p("i")),
    (FLT, f"{ref('f')} != 0.0", p("f")),
    (STR, f'{ref("s")} != ""', p("s")),
    (Not(arg=BOOL), f"!({ref('b')})", f"not {p('b')}"),
    (Const(value=0), "false", "0"),
    (Const(value="x"), "true", '"x"'),
    (
        And(args=(cmp(">", OUT, 100), Not(arg=cmp("==", STR, "dry-run")))),
        f'(int({ref("make-output")}) > 100) && (!({ref("s")} == "dry-run"))',
        f'{MAKE} > 100 and (not {p("s")} == "dry-run")',
    ),
    (
        Or(args=(BOOL, And(args=(cmp("<", FLT, 0), cmp("!=", INT, 0))))),
        f"({ref('b')}) || (({ref('f')} < 0.0) && (int({ref('i')}) != 0))",
        f"{p('b')} or ({p('f')} < 0 and {p('i')} != 0)",
    ),
    (cmp(">=", OUT, INT), f"int({ref('make-output')}) >= int({ref('i')})", f"{MAKE} >= {p('i')}"),
    (
        cmp("==", ITEM, HOSTILE),
        f'{ref("loop-item")} == "a\\"b\\\\n$(x) }}}}"',
        """json.loads(values["item"]) == 'a"b\\\\n$(x) }}'""",
    ),
]
# Tests only Python-like targets can express (an optional compared with None, its truth).
PYTHON_ONLY: list[Expr] = [cmp("==", N, None), cmp("!=", N, None), N, Not(arg=N)]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def reference(expr: Expr, env: dict[str, Any]) -> bool:
    """The local target's decision (see the module docstring)."""
    match expr:
        case Compare():
            return _OPS[expr.op](_value(expr.left, env), _value(expr.right, env))
        case And():
            return all(reference(a, env) for a in expr.args)
        case Or():
            return any(reference(a, env) for a in expr.args)
        case Not():
            return not reference(expr.arg, env)
        case _:
            return bool(_value(expr, env))


def _value(operand: Any, env: dict[str, Any]) -> Any:
    return operand.value if isinstance(operand, Const) else env[key(operand)]


INTS = st.sampled_from([0, 1, 2, 3, 100, 101, -1]) | st.integers(-(2**53), 2**53)
FLOATS = st.sampled_from([0.0, -0.0, 0.5, 1.0, 2.5, -1.5, 3.0]) | st.floats(
    allow_nan=False, allow_infinity=False
)
STRINGS = st.sampled_from(["", "x", "m", "dry-run", HOSTILE]) | st.text(
    alphabet=st.characters(exclude_categories=("Cs",))
)
ENVS = st.fixed_dictionaries(
    {
        "i": INTS,
        "j": INTS,
        "f": FLOATS,
        "b": st.booleans(),
        "c": st.booleans(),
        "s": STRINGS,
        "make.output": INTS,
        "item": STRINGS,
        "n": st.none() | INTS,
    }
)


# Values on the edges of the table's tests (equal to its literals, zero, empty, 2**53), given to
# every row on both targets besides the random ones.
EDGES: list[dict[str, Any]] = [
    {**dict(i=3, j=3, f=1.0, b=True, c=True, s="x", item=HOSTILE, n=None), "make.output": 100},
    {**dict(i=0, j=-1, f=0.0, b=False, c=True, s="", item="", n=0), "make.output": 101},
    {
        **dict(i=2**53, j=-(2**53), f=2.5, b=True, c=False, s="m", item=HOSTILE[:-1], n=2**53),
        "make.output": 2**53,
    },
    {**dict(i=2, j=2, f=-1.5, b=False, c=False, s="dry-run", item="a", n=-1), "make.output": 0},
]


def airflow_decides(expr: Expr, env: dict[str, Any]) -> bool:
    """Run the generated branch callable with Airflow's view of the operands."""
    condition = Condition(id="c", test=expr, location=Location(file="p.py", line=1))
    namespace: dict[str, Any] = {"json": json}
    exec(branch_function(condition, ["yes"], ["no"]), namespace)
    params = {name: env[name] for name in "ijfbcsn"}
    values = {"make.output": env["make.output"], "item": json.dumps(env["item"])}
    chosen = namespace["_when_c"](values, params)
    assert chosen in (["yes"], ["no"])
    return bool(chosen == ["yes"])


def kfp_inputs(env: dict[str, Any]) -> dict[str, Any]:
    """The operands as KFP hands them to CEL: google.protobuf.Values, numbers as doubles."""
    found = {}
    for name, value in env.items():
        if TYPES[name].startswith("optional"):
            continue
        kind = {"bool": "bool", "str": "string"}.get(TYPES[name], "number")
        found[resolve_name(name)] = {kind: float(value) if kind == "number" else value}
    return found


def resolve_name(name: str) -> str:
    return CHANNELS.get(name, f"pipelinechannel--{name}")


@pytest.mark.parametrize(("expr", "cel", "python"), ROWS)
def test_every_target_prints_the_table(expr: Expr, cel: str, python: str) -> None:
    assert to_cel(expr, resolve) == cel
    assert ast.unparse(PythonPrinter().print(expr)) == python


@pytest.mark.parametrize("expr", PYTHON_ONLY)
def test_tests_cel_cannot_mean_the_same_are_refused(expr: Expr) -> None:
    with pytest.raises(ConditionError):
        to_cel(expr, resolve)


@given(st.sampled_from([expr for expr, _, _ in ROWS] + PYTHON_ONLY), ENVS | st.sampled_from(EDGES))
def test_airflow_callables_decide_like_the_local_target(expr: Expr, env: dict[str, Any]) -> None:
    assert airflow_decides(expr, env) == reference(expr, env)


@settings(max_examples=15, deadline=None)
@given(st.lists(ENVS, min_size=len(ROWS), max_size=len(ROWS)))
@example([EDGES[0]] * len(ROWS))
@example([EDGES[1]] * len(ROWS))
@example([EDGES[2]] * len(ROWS))
@example([EDGES[3]] * len(ROWS))
def test_cel_decides_like_the_local_target(envs: list[dict[str, Any]]) -> None:
    """Every row with fresh values per example, evaluated in one CEL process per example."""
    python = tool_python("cel")
    cases = [
        {"cel": to_cel(expr, resolve), "inputs": kfp_inputs(env)}
        for (expr, _, _), env in zip(ROWS, envs, strict=True)
    ]
    done = subprocess.run(
        [str(python), str(CEL_CHECK)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    decided = json.loads(done.stdout)
    expected = [reference(expr, env) for (expr, _, _), env in zip(ROWS, envs, strict=True)]
    wrong = [
        (case["cel"], env, got, want)
        for case, env, got, want in zip(cases, envs, decided, expected, strict=True)
        if got != want
    ]
    assert wrong == []


# ---- github: the `if:` text of each row (None: decided by the target's `-test` job) ------------


def github_var(operand: ParamRef | OutputRef | LoopItem) -> str:
    return "P_" + key(operand).replace(".", "_")


def github_resolve(operand: ParamRef | OutputRef | LoopItem) -> Value:
    return Value(f"fromJSON(env.{github_var(operand)})", TYPES[key(operand)])


def g(name: str) -> str:
    return f"fromJSON(env.P_{name})"


GITHUB: list[str | None] = [
    f"{g('i')} > 3",
    f"{g('i')} > 2.5",
    f"{g('f')} >= 1.0",
    f"{g('i')} == {g('f')}",
    f"{g('i')} < {g('j')}",
    f"{g('f')} != 0.5",
    f"-1.5 <= {g('f')}",
    f"2 < {g('i')}",
    None,
    None,
    f"{g('b')} == true",
    f"{g('b')} != {g('c')}",
    g("b"),
    f"{g('i')} != 0",
    f"{g('f')} != 0.0",
    f"{g('s')} != ''",
    f"!({g('b')})",
    "false",
    "true",
    None,
    f"({g('b')}) || (({g('f')} < 0.0) && ({g('i')} != 0))",
    f"{g('make_output')} >= {g('i')}",
    None,
]


def github_text(expr: Expr) -> str | None:
    try:
        return to_github(expr, github_resolve)
    except ConditionError:
        return None


@pytest.mark.parametrize(("expr", "github"), list(zip([r[0] for r in ROWS], GITHUB, strict=True)))
def test_github_prints_the_table(expr: Expr, github: str | None) -> None:
    assert github_text(expr) == github


@pytest.mark.parametrize("expr", PYTHON_ONLY)
def test_github_leaves_python_only_tests_to_its_test_job(expr: Expr) -> None:
    assert github_text(expr) is None


def act_decides(cases: list[tuple[str, dict[str, Any]]]) -> list[bool]:
    """Evaluate each `if:` text with act: one job, one step per case, operands in env."""
    import tempfile
    from pathlib import Path

    from tests.github_check import tool

    steps = []
    for n, (text, env) in enumerate(cases):
        values = {f"P_{k.replace('.', '_')}": json.dumps(v) for k, v in env.items()}
        steps.append({"if": "${{ " + text + " }}", "env": values, "run": f"echo case-{n}-true"})
    workflow = {"on": "workflow_dispatch", "jobs": {"t": {"runs-on": "ubuntu-latest",
                                                          "steps": steps}}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.yml"
        path.write_text(json.dumps(workflow), encoding="utf-8")
        done = subprocess.run(
            [tool("act"), "workflow_dispatch", "-W", str(path), "-P",
             "ubuntu-latest=-self-hosted", "--no-cache-server", "--json"],
            cwd=tmp, capture_output=True, text=True, check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    said = {json.loads(line).get("msg", "").strip() for line in done.stdout.splitlines()
            if line.startswith("{")}
    return [f"case-{n}-true" in said for n in range(len(cases))]


@settings(max_examples=10, deadline=None)
@given(st.lists(ENVS, min_size=len(ROWS), max_size=len(ROWS)))
@example([EDGES[0]] * len(ROWS))
@example([EDGES[1]] * len(ROWS))
@example([EDGES[2]] * len(ROWS))
@example([EDGES[3]] * len(ROWS))
def test_github_expressions_decide_like_the_local_target(envs: list[dict[str, Any]]) -> None:
    """Every row GitHub expresses, with fresh values per example, in one act run per example."""
    rows = [
        (expr, text, env)
        for (expr, _, _), text, env in zip(ROWS, GITHUB, envs, strict=True)
        if text is not None
    ]
    decided = act_decides([(text, env) for _, text, env in rows])
    wrong = [
        (text, env, got)
        for (expr, text, env), got in zip(rows, decided, strict=True)
        if got != reference(expr, env)
    ]
    assert wrong == []
