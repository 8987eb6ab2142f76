"""A job inside a foreach (job.py's `step` and `iterations` modes): its loop inputs, and every
iteration of a foreach inside a foreach.

A foreach is a matrix over `[0, .., n-1]`; the job reads its item from the loop's items itself:

* `--item NAME=VAR` is element `$PIPEC_INDEX` of the JSON list in `$VAR` (the foreach's items),
  `--collect NAME=STEP/OUTPUT=VAR` the folders of STEP's OUTPUT over every iteration (under
  `$PIPEC_ARTIFACT_ROOT/$PIPEC_RUN_ID`) of the foreach whose items are in `$VAR`;
* in a foreach inside a foreach (its matrix index is `i/j[/k..]`, outermost first): `--loop-item
  NAME=LOOP` the item of LOOP at this iteration, `--loop-collect NAME=STEP/OUTPUT=LOOP` the folders
  of STEP's OUTPUT over every iteration of LOOP inside this one, `--outer NAME=STEP/OUTPUT=DEPTH`
  the folder of an output made at the enclosing iteration (the first DEPTH indices); where each
  loop's items come from is `$PIPEC_LOOPS` (see `Loops`).

GitHub cannot expand a matrix inside a matrix, so a foreach inside a foreach runs as one flat
matrix over the iterations `iterations` lists (the compile side is loop_jobs.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from pipec.backends.github.job_io import (
    LISTED,
    MATRIX_LIMIT,
    JobError,
    env,
    iteration_index,
    json_env,
    list_env,
    pairs,
    write_output,
)
from pipec.backends.runtime import store
from pipec.backends.runtime.invocation import SourceKind, source


class Loops:
    """Where the items of each loop come from, at any iteration (`$PIPEC_LOOPS`, a JSON object:
    loop id -> `depth`, the `outer` loop id, and one of `env` (a variable holding the JSON items,
    the same at every iteration), `store` (`[step, output]` made at an outer iteration, read
    from the store at the first `store_depth` indices) or `item` (the item of an outer loop))."""

    def __init__(self) -> None:
        self.specs: dict[str, Any] = json_env("PIPEC_LOOPS")
        self.root, self.run_id = env("PIPEC_ARTIFACT_ROOT"), env("PIPEC_RUN_ID")
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
            return list_env(str(spec["env"]))
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


def loop_inputs(args: argparse.Namespace, inputs: dict[str, str]) -> None:
    """Add the step's loop inputs (see the module docstring) to its runtime `inputs`."""
    for name, var in pairs(args.item, "--item"):
        items = list_env(var)
        index = int(env("PIPEC_INDEX"))
        inputs[name] = source(SourceKind.VALUE, json.dumps(items[index]))
    for name, spec in pairs(args.collect, "--collect"):
        produced, _, var = spec.partition("=")
        step_id, _, output = produced.partition("/")
        root, run_id = env("PIPEC_ARTIFACT_ROOT"), env("PIPEC_RUN_ID")
        count = len(list_env(var))
        dirs = [store.output_uri(root, run_id, step_id, (i,), output) for i in range(count)]
        inputs[name] = source(SourceKind.ARTIFACTS, json.dumps(dirs))
    if args.loop_item or args.loop_collect or args.outer:
        _nested_inputs(args, inputs)


def _nested_inputs(args: argparse.Namespace, inputs: dict[str, str]) -> None:
    """The inputs of a step inside a foreach inside a foreach (see the module docstring)."""
    at = iteration_index()
    loops = Loops()
    for name, loop in pairs(args.loop_item, "--loop-item"):
        depth = loops.depth(loop)
        item = loops.items(loop, at[: depth - 1])[at[depth - 1]]
        inputs[name] = source(SourceKind.VALUE, json.dumps(item))
    for name, spec in pairs(args.loop_collect, "--loop-collect"):
        produced, _, loop = spec.partition("=")
        step_id, _, output = produced.partition("/")
        outer = at[: loops.depth(loop) - 1]
        count = len(loops.items(loop, outer))
        dirs = [
            store.output_uri(loops.root, loops.run_id, step_id, (*outer, i), output)
            for i in range(count)
        ]
        inputs[name] = source(SourceKind.ARTIFACTS, json.dumps(dirs))
    for name, spec in pairs(args.outer, "--outer"):
        produced, _, depth_text = spec.partition("=")
        step_id, _, output = produced.partition("/")
        where = at[: int(depth_text)]
        uri = store.output_uri(loops.root, loops.run_id, step_id, where, output)
        inputs[name] = source(SourceKind.ARTIFACT, uri)


def iterations(args: argparse.Namespace) -> int:
    """Write `iterations`: every iteration of a foreach inside a foreach (job.py's docstring)."""
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
