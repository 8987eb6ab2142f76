"""The loop part of a workflow's jobs (`jobs.JobWriter` inherits it): matrices, the items a job
reads, and what GitHub matrices lack, done by small jobs and the job wrapper (`job`).

* A foreach is a matrix over indices: a literal's now, else a job output written at run time
  (`<list>-indices` of the `params` job or of the step that made the list).
* A foreach inside a foreach (matrices do not nest) is flattened: its `<loop>-iterations` job
  lists every `i/j[/k..]` iteration over the loops around it, and each of its steps' jobs is one
  matrix over that list. What a job needs to find loop items, collects and outputs of its outer
  iteration at run time is `$PIPEC_LOOPS` (`_loops_env`).
* A `when` inside a foreach is decided by each iteration's job (`$PIPEC_WHEN`, `--operand`).
"""

from __future__ import annotations

from typing import Any, assert_never

from pipec.backends.common.k8s import json_env_text
from pipec.backends.github import layout as lay
from pipec.backends.github import shell
from pipec.backends.github.expressions import expr, output_of
from pipec.backends.github.settings import GithubSettings
from pipec.ir import graph
from pipec.ir.model import Collect, Const, Loop, LoopItem, OutputRef, ParamRef

JOB_MODULE = "pipec.backends.github.job"
STATUS_OK = "!cancelled() && !contains(needs.*.result, 'failure') && " + (
    "!contains(needs.*.result, 'cancelled')"
)


class LoopJobs:
    """The loop part of the job writer (which provides the state and helpers declared here)."""

    layout: lay.Layout
    settings: GithubSettings

    def _frame(self, job: str, runs_on: str | list[str]) -> dict[str, Any]:
        raise NotImplementedError  # the job writer's

    def _branch_test(self, branch: lay.Branch) -> str:
        raise NotImplementedError  # the job writer's

    def _root(self) -> str:
        raise NotImplementedError  # the job writer's

    def _prelude(self) -> list[dict[str, Any]]:
        raise NotImplementedError  # the job writer's

    def _indices(self, loop: Loop) -> str | None:
        """The job output holding a foreach's matrix indices (`[0, .., n-1]`, written at run
        time; for a foreach inside a foreach, its `-iterations` job's `["0/0", "0/1", ..]`);
        None for a literal list, whose indices are known now."""
        if self.layout.nested(loop):
            return f"needs.{lay.iterations_job(loop.id)}.outputs.iterations"
        match loop.items:
            case Const():
                return None
            case ParamRef():
                return f"needs.{lay.PARAMS_JOB}.outputs.{loop.items.param}-indices"
            case OutputRef():
                return f"needs.{loop.items.step}.outputs.{loop.items.output}-indices"
            case LoopItem() | Collect():
                raise AssertionError("refused by the checks")

    def _has_items(self, loop: Loop) -> str | None:
        """The `if:` that skips a foreach's job when its list is empty: GitHub refuses a matrix
        with no values (act runs it once, without an index), where every other target runs no
        iteration and goes on (a `collect` of it is `[]`). None for a literal list with items;
        an empty one is there only with --no-optimize (`prune` removes it)."""
        indices = self._indices(loop)
        if indices is not None:
            return f"{indices} != '[]'"
        assert isinstance(loop.items, Const)
        return None if loop.items.value else "false"

    def _items_env(self, loop_id: str) -> str:
        """The JSON text of a foreach's items, as an env value."""
        items = self.layout.loops[loop_id].items
        match items:
            case Const():
                return json_env_text(items.value)
            case ParamRef():
                return output_of(lay.PARAMS_JOB, items.param)
            case OutputRef():
                return output_of(items.step, items.output)
            case LoopItem() | Collect():
                raise AssertionError("refused by the checks")

    def _matrix(self, loop_id: str) -> dict[str, Any]:
        """One matrix over the foreach's iterations. A flattened foreach's `parallelism` holds
        over all its iterations at once (stricter than per outer iteration, never looser)."""
        loop = self.layout.loops[loop_id]
        indices = self._indices(loop)
        index: Any
        if indices is not None:
            # act expands a job's matrix even when its `if:` skips it, and there a job that did
            # not run has its outputs' unevaluated text: read `[]` unless the job succeeded.
            producer = indices.removeprefix("needs.").split(".")[0]
            index = expr(f"fromJSON(needs.{producer}.result == 'success' && {indices} || '[]')")
        else:
            assert isinstance(loop.items, Const) and isinstance(loop.items.value, list)
            index = list(range(len(loop.items.value)))
        strategy: dict[str, Any] = {"fail-fast": False, "matrix": {"index": index}}
        if loop.parallelism:
            strategy["max-parallel"] = loop.parallelism
        return strategy

    def _loops_env(self, loop_ids: list[str], env: dict[str, str]) -> None:
        """`PIPEC_LOOPS` (what `job` needs to find the items of `loop_ids` and of every loop
        around them at any iteration) and the variables holding their JSON items."""
        known: dict[str, Any] = {}
        for wanted in loop_ids:
            for loop_id in self.layout.chain[wanted]:
                known[loop_id] = self._loop_spec(loop_id, env)
        env["PIPEC_LOOPS"] = json_env_text(known)

    def _loop_spec(self, loop_id: str, env: dict[str, str]) -> dict[str, Any]:
        """One loop for `job`: its depth, the loop around it, and where its items come from:
        a JSON variable (`env`), an output in the store made at an outer iteration (`store`,
        `[step, output]` at the first `depth` indices), or the item of an outer loop (`item`)."""
        chain = self.layout.chain[loop_id]
        spec: dict[str, Any] = {"depth": len(chain), "outer": chain[-2] if len(chain) > 1 else None}
        items = self.layout.loops[loop_id].items
        match items:
            case OutputRef() if self.layout.loop_of[items.step] is not None:
                spec["store"] = [items.step, items.output]
                spec["store_depth"] = self.layout.step_depth(items.step)
            case LoopItem():
                spec["item"] = items.loop
            case Const() | ParamRef() | OutputRef():
                var = f"PIPEC_ITEMS_{loop_id}"
                env[var] = self._items_env(loop_id)
                spec["env"] = var
            case Collect():
                raise AssertionError("refused by the checks")
        return spec

    def _operand_source(
        self, operand: Const | ParamRef | OutputRef | LoopItem, nested: list[str]
    ) -> tuple[str, str, str | None] | None:
        """(operand key, SOURCE, the env value when SOURCE is `env:`) of one test operand; None
        for a constant (the test holds it)."""
        match operand:
            case Const():
                return None
            case ParamRef():
                return f"params.{operand.param}", "env:", output_of(lay.PARAMS_JOB, operand.param)
            case OutputRef():
                key = f"steps.{operand.step}.{operand.output}"
                if self.layout.loop_of[operand.step] is None:
                    return key, "env:", output_of(operand.step, operand.output)
                depth = self.layout.step_depth(operand.step)
                return key, f"store:{operand.step}/{operand.output}/{depth}", None
            case LoopItem():
                nested.append(operand.loop)
                return f"loops.{operand.loop}", f"item:{operand.loop}", None
            case _:
                assert_never(operand)

    def _iteration_tests(self, step_id: str, env: dict[str, str], nested: list[str]) -> list[str]:
        """The `when` branches around a step inside a foreach, decided by its job per iteration
        (`PIPEC_WHEN`: each test in the IR's JSON form and the branch), with `--operand
        KEY=SOURCE` for what they read: `env:VAR` (a parameter, an output made outside every
        loop), `store:STEP/OUTPUT/DEPTH` (made at this iteration or an outer one), `item:LOOP`."""
        branches = self.layout.iteration_branches.get(step_id, ())
        if not branches:
            return []
        tests = []
        options: list[str] = []
        seen: set[str] = set()
        for branch in branches:
            condition = self.layout.per_iteration[branch.condition]
            tests.append(
                {
                    "condition": condition.id,
                    "test": condition.test.model_dump(mode="json"),
                    "then": branch.then,
                }
            )
            for operand in graph.expr_operands(condition.test):
                found = self._operand_source(operand, nested)
                if found is None or found[0] in seen:
                    continue
                key, spec, value = found
                seen.add(key)
                if value is not None:  # a JSON job output, handed over in the environment
                    spec = f"env:PIPEC_OP_{len(seen)}"
                    env[spec.removeprefix("env:")] = value
                options += ["--operand", f"{key}={spec}"]
        env["PIPEC_WHEN"] = json_env_text(tests)
        return options

    def iterations_job(self, loop: Loop) -> dict[str, Any]:
        """The job listing every iteration of a foreach inside a foreach (`job iterations`):
        the matrix of each of its steps' jobs, and `[]` (no job runs) when there are none."""
        job_id = lay.iterations_job(loop.id)
        job = self._frame(job_id, self.settings.runner_for(None, None) or "ubuntu-latest")
        env = {
            "PIPEC_ARTIFACT_ROOT": self._root(),
            "PIPEC_RUN_ID": expr("github.run_id"),
        }
        tests = [self._branch_test(b) for b in self.layout.branches.get(job_id, ())]
        if tests:
            # Never skipped by a branch: act expands its steps' matrices before their `if:`,
            # and a skipped job's outputs there are the unevaluated text. In a branch not taken
            # it runs and lists no iteration.
            job["needs"] = sorted(lay.ancestors(self.layout, job_id))
            job["if"] = STATUS_OK
            env["PIPEC_TAKEN"] = expr(" && ".join(f"({t})" for t in tests))
        self._loops_env([loop.id], env)
        argv = [self.settings.python, "-m", JOB_MODULE, "iterations", "--loop", loop.id]
        run = {"id": "run", "env": env, "run": shell.command(argv)}
        job["steps"] = [*self._prelude(), run]
        job["outputs"] = {"iterations": expr("steps.run.outputs.iterations")}
        return job
