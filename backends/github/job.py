"""What a job of a pipec workflow runs: the step runtime with what GitHub Actions lacks around it.

    python -m pipec.backends.github.job step [OPTIONS] -- RUNTIME-ARGS
    python -m pipec.backends.github.job params
    python -m pipec.backends.github.job decide --operand KEY=VAR ...

`step` runs `python -m pipec.backends.runtime RUNTIME-ARGS` (an `Invocation`, built by the target
like on every engine; the step's retries and timeout are the runtime's own `--retries`,
`--retry-delay` and `--timeout`, since GitHub Actions has no retries) and adds:

* loop inputs: `--item NAME=VAR` is element `$PIPEC_INDEX` of the JSON list in `$VAR` (the
  foreach's items), `--collect NAME=STEP/OUTPUT=VAR` the folders of STEP's OUTPUT over every
  iteration (under `$PIPEC_ARTIFACT_ROOT/$PIPEC_RUN_ID`) of the foreach whose items are in `$VAR`;
* in a foreach inside a foreach (its matrix index is `i/j[/k..]`, outermost first): `--loop-item
  NAME=LOOP` the item of LOOP at this iteration, `--loop-collect NAME=STEP/OUTPUT=LOOP` the folders
  of STEP's OUTPUT over every iteration of LOOP inside this one, `--outer NAME=STEP/OUTPUT=DEPTH`
  the folder of an output made at the enclosing iteration (the first DEPTH indices); where each
  loop's items come from is `$PIPEC_LOOPS` (see `Loops`);
* `when` branches inside a foreach (a job's `if:` is decided before its matrix expands):
  `$PIPEC_WHEN` lists the tests around the step (IR JSON) with the branch each is on, `--operand
  KEY=SOURCE` what they read (`env:VAR`, `store:STEP/OUTPUT/DEPTH`, `item:LOOP`); when a branch
  is not taken in this iteration the job ends at once, printing `SKIPPED` and the reason;
* the step's own environment: `$PIPEC_ENV`, a JSON object (a `$` in it is `\\u0024`, so GitHub
  never reads an expression in it);
* job outputs: `--export NAME` writes output NAME's JSON text to `$GITHUB_OUTPUT` (conditions,
  matrices and later jobs read it), `--indices NAME` also `NAME-indices`, the list `[0, .., n-1]`
  a matrix over NAME's items expands.

`params` turns the workflow's inputs (`$PIPEC_INPUTS`, `toJSON(inputs)`) into every parameter's
checked JSON value, one job output each (defaults for inputs a trigger did not give, e.g. a
schedule; an empty input whose default GitHub could not be given, `$PIPEC_EMPTY_IS_DEFAULT`),
with `<name>-indices` for list parameters a foreach runs over (`$PIPEC_LOOPED`).

`iterations --loop LOOP` lists every iteration of a foreach inside a foreach over every
iteration of the loops around it (none when `$PIPEC_TAKEN`, its `when` branches, is not `true`),
as the job output `iterations` (`["0/0", "0/1", ..]`, what the matrix of each of its steps' jobs
expands); past GitHub's 256 jobs it fails, naming the numbers.

`decide` evaluates a condition (`$PIPEC_TEST`, the IR's JSON form) in Python, the local target's
meaning, for tests GitHub's expressions cannot say the same way, and writes `holds=true|false`.

Values only ever arrive through environment variables; nothing here is a shell or an expression.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipec.backends.runtime import store
from pipec.backends.runtime.invocation import RUNTIME_MODULE, SourceKind, parse, source

SKIPPED = "pipec job: skipped:"  # a branch not taken in this iteration (act_run reads it)
LISTED = "pipec job: iterations:"  # every loop's iterations, JSON (act_run's summary reads it)
MATRIX_LIMIT = 256  # GitHub expands at most 256 jobs from one matrix
OUTPUT_LIMIT = 1_000_000  # bytes of one job output GitHub keeps
EXIT_BAD = 2


class JobError(Exception):
    """The job was set up wrongly or got a value it cannot use; one line, exit 2."""


def _env(name: str) -> str:
    if name not in os.environ:
        raise JobError(f"environment variable {name} is not set")
    return os.environ[name]


def _json_env(name: str) -> Any:
    try:
        return json.loads(_env(name))
    except json.JSONDecodeError as exc:
        raise JobError(f"{name} is not JSON: {exc}") from None


def _list_env(name: str) -> list[Any]:
    items = _json_env(name)
    if not isinstance(items, list):
        raise JobError(f"a foreach needs a list, got {type(items).__name__} (from {name})")
    return items


def indices(items: list[Any], what: str) -> list[int]:
    """`[0, .., n-1]` for a matrix; over GitHub's limit is an error naming the loop's source."""
    if len(items) > MATRIX_LIMIT:
        raise JobError(
            f"{what} has {len(items)} items; a GitHub matrix expands at most {MATRIX_LIMIT} jobs "
            "(split the list, or run this pipeline on another target)"
        )
    return list(range(len(items)))


class Loops:
    """Where the items of each loop come from, at any iteration (`$PIPEC_LOOPS`, a JSON object:
    loop id -> `depth`, the `outer` loop id, and one of `env` (a variable holding the JSON items,
    the same at every iteration), `store` (`[step, output]` made at an outer iteration, read
    from the store at the first `store_depth` indices) or `item` (the item of an outer loop))."""

    def __init__(self) -> None:
        self.specs: dict[str, Any] = _json_env("PIPEC_LOOPS")
        self.root, self.run_id = _env("PIPEC_ARTIFACT_ROOT"), _env("PIPEC_RUN_ID")
        self._seen: dict[tuple[str, tuple[int, ...]], list[Any]] = {}

    def depth(self, loop: str) -> int:
        return int(self._spec(loop)["depth"])

    def _spec(self, loop: str) -> dict[str, Any]:
        if loop not in self.specs:
            raise JobError(f"PIPEC_LOOPS does not describe loop {loop!r}")
        spec: dict[str, Any] = self.specs[loop]
        return spec

    def items(self, loop: str, outer: tuple[int, ...]) -> list[Any]:
        """The items of `loop` in the iteration `outer` of the loops around it."""
        key = (loop, outer)
        if key not in self._seen:
            self._seen[key] = self._items(loop, outer)
        return self._seen[key]

    def _items(self, loop: str, outer: tuple[int, ...]) -> list[Any]:
        spec = self._spec(loop)
        if "env" in spec:
            return _list_env(str(spec["env"]))
        if "item" in spec:
            around = str(spec["item"])
            depth = self.depth(around)
            value = self.items(around, outer[: depth - 1])[outer[depth - 1]]
            what = f"the item of loop {around!r}"
        else:
            step_id, output = spec["store"]
            at = outer[: int(spec["store_depth"])]
            uri = store.output_uri(self.root, self.run_id, step_id, at, output)
            try:
                value = store.read(uri)
            except FileNotFoundError:
                raise JobError(f"no output {step_id}.{output} at iteration {at}") from None
            what = f"output {step_id}.{output}"
        if not isinstance(value, list):
            raise JobError(f"a foreach needs a list, got {type(value).__name__} ({what})")
        return value

    def iterations(self, loop: str) -> list[tuple[int, ...]]:
        """Every iteration of `loop` over every iteration of the loops around it, in order."""
        spec = self._spec(loop)
        around = [()] if spec["outer"] is None else self.iterations(str(spec["outer"]))
        return [(*at, i) for at in around for i in range(len(self.items(loop, at)))]


def iteration_index() -> tuple[int, ...]:
    """This job's iteration, from its matrix index `i/j[/k..]`."""
    text = _env("PIPEC_INDEX")
    try:
        return tuple(int(part) for part in text.split("/"))
    except ValueError:
        raise JobError(f"PIPEC_INDEX is not an iteration: {text!r}") from None


def write_output(name: str, text: str) -> None:
    """Append `name` = `text` to `$GITHUB_OUTPUT` (a delimiter no value can contain)."""
    if len(text.encode()) > OUTPUT_LIMIT:
        raise JobError(
            f"output {name} is {len(text.encode())} bytes; GitHub keeps job outputs up to "
            f"{OUTPUT_LIMIT} bytes (return a smaller value, or an artifact type)"
        )
    delimiter = f"pipec_{secrets.token_hex(16)}"
    with open(_env("GITHUB_OUTPUT"), "a", encoding="utf-8") as handle:
        handle.write(f"{name}<<{delimiter}\n{text}\n{delimiter}\n")


def _pairs(values: Sequence[str], option: str) -> list[tuple[str, str]]:
    found = []
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep:
            raise JobError(f"{option} takes NAME=VALUE, got {value!r}")
        found.append((name, rest))
    return found


def step(args: argparse.Namespace, runtime_args: list[str]) -> int:
    """Run the step runtime with loop inputs resolved and outputs exported."""
    if "PIPEC_WHEN" in os.environ:
        not_taken = _branch_not_taken(args)
        if not_taken is not None:
            print(f"{SKIPPED} {not_taken}", flush=True)
            return 0
    invocation = parse(runtime_args)
    inputs = dict(invocation.inputs)
    for name, var in _pairs(args.item, "--item"):
        items = _list_env(var)
        index = int(_env("PIPEC_INDEX"))
        inputs[name] = source(SourceKind.VALUE, json.dumps(items[index]))
    for name, spec in _pairs(args.collect, "--collect"):
        produced, _, var = spec.partition("=")
        step_id, _, output = produced.partition("/")
        root, run_id = _env("PIPEC_ARTIFACT_ROOT"), _env("PIPEC_RUN_ID")
        count = len(_list_env(var))
        dirs = [store.output_uri(root, run_id, step_id, (i,), output) for i in range(count)]
        inputs[name] = source(SourceKind.ARTIFACTS, json.dumps(dirs))
    if args.loop_item or args.loop_collect or args.outer:
        _nested_inputs(args, inputs)
    exported = [*args.export, *(n for n in args.indices if n not in args.export)]
    with tempfile.TemporaryDirectory(prefix="pipec-job-") as tmp:
        values = {name: str(Path(tmp) / f"{name}.json") for name in exported}
        for name, path in values.items():
            invocation = invocation.with_output_value(name, path)
        invocation = replace(invocation, inputs=inputs)
        command = [sys.executable, "-m", RUNTIME_MODULE, *invocation.argv()]
        env = {**os.environ, **(_json_env("PIPEC_ENV") if "PIPEC_ENV" in os.environ else {})}
        code = subprocess.run(command, env=env, check=False).returncode
        if code != 0:
            return code
        for name, path in values.items():
            text = Path(path).read_text(encoding="utf-8")
            write_output(name, text)
            if name in args.indices:
                looped = json.loads(text)
                if not isinstance(looped, list):
                    raise JobError(f"a foreach runs over output {name}, which is not a list")
                write_output(f"{name}-indices", json.dumps(indices(looped, f"output {name}")))
    return 0


def _nested_inputs(args: argparse.Namespace, inputs: dict[str, str]) -> None:
    """The inputs of a step inside a foreach inside a foreach (see the module docstring)."""
    at = iteration_index()
    loops = Loops()
    for name, loop in _pairs(args.loop_item, "--loop-item"):
        depth = loops.depth(loop)
        item = loops.items(loop, at[: depth - 1])[at[depth - 1]]
        inputs[name] = source(SourceKind.VALUE, json.dumps(item))
    for name, spec in _pairs(args.loop_collect, "--loop-collect"):
        produced, _, loop = spec.partition("=")
        step_id, _, output = produced.partition("/")
        outer = at[: loops.depth(loop) - 1]
        count = len(loops.items(loop, outer))
        dirs = [
            store.output_uri(loops.root, loops.run_id, step_id, (*outer, i), output)
            for i in range(count)
        ]
        inputs[name] = source(SourceKind.ARTIFACTS, json.dumps(dirs))
    for name, spec in _pairs(args.outer, "--outer"):
        produced, _, depth_text = spec.partition("=")
        step_id, _, output = produced.partition("/")
        where = at[: int(depth_text)]
        uri = store.output_uri(loops.root, loops.run_id, step_id, where, output)
        inputs[name] = source(SourceKind.ARTIFACT, uri)


def _branch_not_taken(args: argparse.Namespace) -> str | None:
    """Why this iteration does not run the step (a `when` branch around it not taken), or None."""
    from pydantic import TypeAdapter

    from pipec.ir import evaluate
    from pipec.ir.model import Expr

    operands: dict[str, Any] = {}
    for key, spec in _pairs(args.operand, "--operand"):
        kind, _, where = spec.partition(":")
        if kind == "env":
            operands[key] = _json_env(where)
        elif kind == "item":
            loops, at = Loops(), iteration_index()
            depth = loops.depth(where)
            operands[key] = loops.items(where, at[: depth - 1])[at[depth - 1]]
        elif kind == "store":
            step_id, output, depth_text = where.split("/")
            at = iteration_index()[: int(depth_text)]
            root, run_id = _env("PIPEC_ARTIFACT_ROOT"), _env("PIPEC_RUN_ID")
            operands[key] = store.read(store.output_uri(root, run_id, step_id, at, output))
        else:
            raise JobError(f"--operand takes KEY=env:|store:|item:..., got {spec!r}")
    for branch in _json_env("PIPEC_WHEN"):
        test: Expr = TypeAdapter(Expr).validate_python(branch["test"])
        try:
            holds = evaluate.holds(test, lambda ref: operands[operand_key(ref.model_dump())])
        except evaluate.EvaluationError as exc:
            raise JobError(f"the condition cannot be decided: {exc}") from None
        if holds != bool(branch["then"]):
            side = "then" if branch["then"] else "otherwise"
            return f"the {side} branch of {branch['condition']} is not taken in this iteration"
    return None


def iterations(args: argparse.Namespace) -> int:
    """Write `iterations`: every iteration of a foreach inside a foreach (module docstring)."""
    if os.environ.get("PIPEC_TAKEN", "true") != "true":  # in a `when` branch not taken
        print(f"pipec: no iterations of {args.loop}: its branch is not taken", file=sys.stderr)
        write_output("iterations", "[]")
        return 0
    loops = Loops()
    found = loops.iterations(args.loop)
    if len(found) > MATRIX_LIMIT:
        raise JobError(
            f"foreach {args.loop!r} has {len(found)} iterations over the loops around it; a "
            f"GitHub matrix expands at most {MATRIX_LIMIT} jobs (loop over fewer items, or run "
            "this pipeline on another target)"
        )
    texts = ["/".join(str(i) for i in at) for at in found]
    listed: dict[str, list[str]] = {}
    around: str | None = args.loop
    while around is not None:  # this loop and every loop around it, for the run's summary
        listed[around] = ["/".join(str(i) for i in at) for at in loops.iterations(around)]
        around = loops.specs[around]["outer"]
    print(f"{LISTED} {json.dumps(listed, sort_keys=True)}", flush=True)
    write_output("iterations", json.dumps(texts))
    return 0


def params() -> int:
    """Every parameter's JSON value from the workflow's inputs (see the module docstring)."""
    from pipec.backends.params import ParamError, resolve_params
    from pipec.ir.model import Param

    declared = {p.name: p for p in map(Param.model_validate, _json_env("PIPEC_DECLARED"))}
    given_raw: dict[str, Any] = _json_env("PIPEC_INPUTS") or {}
    if "PIPEC_PACKED" in os.environ:  # more parameters than inputs: one JSON input holds them
        packed = given_raw.get(os.environ["PIPEC_PACKED"]) or "{}"
        given_raw = json.loads(packed) if isinstance(packed, str) else packed
    given: dict[str, Any] = {}
    unwritten = "PIPEC_EMPTY_IS_DEFAULT"
    empty_is_default = set(_json_env(unwritten)) if unwritten in os.environ else set()
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
    looped = set(_json_env("PIPEC_LOOPED")) if "PIPEC_LOOPED" in os.environ else set()
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


def decide(args: argparse.Namespace) -> int:
    """Evaluate `$PIPEC_TEST` over the operands' JSON values (`pipec.ir.evaluate`, what the
    local target decides with); write `holds`."""
    from pydantic import TypeAdapter

    from pipec.ir import evaluate
    from pipec.ir.model import Expr

    operands = {key: _json_env(var) for key, var in _pairs(args.operand, "--operand")}
    test: Expr = TypeAdapter(Expr).validate_python(_json_env("PIPEC_TEST"))
    try:
        holds = evaluate.holds(test, lambda ref: operands[operand_key(ref.model_dump())])
    except evaluate.EvaluationError as exc:
        raise JobError(f"the condition cannot be decided: {exc}") from None
    print(f"pipec: the test is {'true' if holds else 'false'}", file=sys.stderr)
    write_output("holds", "true" if holds else "false")
    return 0


def operand_key(operand: Mapping[str, Any]) -> str:
    """How `decide` names an operand (IR JSON form): `params.P`, `steps.S.O`, `loops.L`."""
    kind = operand["kind"]
    if kind == "param":
        return f"params.{operand['param']}"
    if kind == "output":
        return f"steps.{operand['step']}.{operand['output']}"
    return f"loops.{operand['loop']}"


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring); exit 2 for a job set up wrongly."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    runtime_args: list[str] = []
    if "--" in args_in:
        cut = args_in.index("--")
        args_in, runtime_args = args_in[:cut], args_in[cut + 1 :]
    parser = argparse.ArgumentParser(prog="python -m pipec.backends.github.job")
    modes = parser.add_subparsers(dest="mode", required=True)
    run = modes.add_parser("step")
    flags = ("--item", "--collect", "--export", "--indices", "--loop-item", "--loop-collect")
    for flag in (*flags, "--outer", "--operand"):
        run.add_argument(flag, action="append", default=[])
    modes.add_parser("params")
    modes.add_parser("iterations").add_argument("--loop", required=True)
    test = modes.add_parser("decide")
    test.add_argument("--operand", action="append", default=[])
    args = parser.parse_args(args_in)
    try:
        if args.mode == "step":
            return step(args, runtime_args)
        if args.mode == "params":
            return params()
        if args.mode == "iterations":
            return iterations(args)
        return decide(args)
    except JobError as exc:
        print(f"pipec job: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_BAD


if __name__ == "__main__":
    sys.exit(main())
