"""One GitHub Actions job per step, plus the `params` job, `-test` and `-iterations` jobs (see
`layout`; matrices, loop inputs and the `-iterations` job are `loop_jobs`).

A step's job: optional checkout and setup, artifact downloads (`artifacts = "github"`), then one
`run:` step, `python -m pipec.backends.github.job step ... -- <runtime argv>`, whose argv is an
`Invocation` like on every engine. Values reach it only through `env:`: parameters and earlier
steps' values as job outputs (`${{ needs.<job>.outputs.<name> }}`), constants as JSON text with
every `$` written `\\u0024` (so GitHub never finds an expression in them), secrets as
`${{ secrets.NAME }}`. Outputs go to the store, `<root>/<run_id>/<step>[/<i>]/<output>`.

A job inside `when` branches gets an `if:` joining its branches' tests. A job downstream (directly
or not: GitHub's implicit `success()` looks at every job above) of a job that a branch it is not
inside may skip (a join after `when`/`otherwise`, `.after()` on a branch step), or an empty
foreach it is not inside, must not inherit GitHub's skip: it waits for every job upstream and
runs when none of them failed or was cancelled, `!cancelled() && !contains(needs.*.result,
'failure') && ...` — what the local target does.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pipec.backends.common.k8s import json_env_text
from pipec.backends.github import layout as lay
from pipec.backends.github import pins, shell
from pipec.backends.github.expressions import expr, output_of
from pipec.backends.github.loop_jobs import JOB_MODULE, STATUS_OK, LoopJobs
from pipec.backends.github.settings import GithubSettings
from pipec.backends.runtime.invocation import Invocation, SourceKind, source, step_cache_key
from pipec.ir import graph, types
from pipec.ir.model import (
    Collect,
    Component,
    Condition,
    Const,
    LoopItem,
    OutputRef,
    ParamRef,
    Step,
)

SETUP_MINUTES = 10  # checkout, setup and the interpreter's start, on top of the step's timeout


class JobWriter(LoopJobs):
    """Writes every job of one workflow (settings and layout fixed)."""

    def __init__(self, layout: lay.Layout, settings: GithubSettings) -> None:
        self.layout = layout
        self.settings = settings
        self.env = graph.TypeEnv(layout.pipeline)
        self.components = graph.components(layout.pipeline)

    # ---- shared parts ---------------------------------------------------------------------

    def _root(self) -> str:
        if self.settings.artifacts == "github":
            return expr("runner.temp") + "/pipec"
        assert self.settings.artifact_root is not None  # checked before emit
        return self.settings.artifact_root.rstrip("/")

    def _prelude(self) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = []
        if self.settings.checkout:
            steps.append(
                {"uses": pins.uses("actions/checkout"), "with": {"persist-credentials": False}}
            )
        if self.settings.setup:
            steps.append({"name": "setup", "run": self.settings.setup})
        return steps

    def _frame(self, job: str, runs_on: str | list[str]) -> dict[str, Any]:
        """`needs`, `if:` and `runs-on` of a job (see the module docstring)."""
        direct = self.layout.needs.get(job, set())
        tests = [self._branch_test(b) for b in self.layout.branches.get(job, ())]
        loop = self.layout.loop_of.get(job)
        has_items = None if loop is None else self._has_items(loop)
        if has_items is not None:
            tests.append(has_items)
        body: dict[str, Any] = {"runs-on": runs_on}
        # GitHub's (and act's) implicit `success()` looks at every job upstream, not only the
        # direct needs: one skipped anywhere above would skip this job too.
        upstream = lay.ancestors(self.layout, job)
        if any(lay.may_be_skipped_for(self.layout, need, job) for need in upstream):
            body["needs"] = sorted(lay.ancestors(self.layout, job))
            body["if"] = " && ".join([STATUS_OK, *(f"({t})" for t in tests)])
        else:
            if direct:
                body["needs"] = sorted(direct)
            if tests:
                body["if"] = " && ".join(f"({t})" for t in tests) if len(tests) > 1 else tests[0]
        return body

    def _branch_test(self, branch: lay.Branch) -> str:
        test = self.layout.tests[branch.condition]
        if test is None:
            wanted = "true" if branch.then else "false"
            return f"needs.{lay.test_job(branch.condition)}.outputs.holds == '{wanted}'"
        return test if branch.then else f"!({test})"

    # ---- the jobs -------------------------------------------------------------------------

    def step_job(self, step: Step) -> dict[str, Any]:
        """The job of one step."""
        component = self.components[step.component]
        loop = self.layout.loop_of[step.id]
        runs_on = self.settings.runner_for(step.resources.gpu, step.resources.gpu_type)
        assert runs_on is not None  # a GPU step without a GPU runner was refused
        job = self._frame(step.id, runs_on)
        if step.name != step.id and "${{" not in step.name:
            job["name"] = step.name
        image = step.image or self.settings.image
        if image and self.settings.containers:
            job["container"] = {"image": image}
        if loop is not None:
            job["strategy"] = self._matrix(loop.id)
        if step.timeout is not None:
            attempts = step.retries + 1
            seconds = attempts * step.timeout + step.retries * step.retry_delay
            job["timeout-minutes"] = math.ceil(seconds / 60) + SETUP_MINUTES
        run_env, options, inputs = self._inputs(step, loop is not None)
        exported = self.layout.exports.get(step.id, [])
        looped = self.layout.indices.get(step.id, [])
        for name in exported:
            options += ["--export", name]
        for name in looped:
            options += ["--indices", name]
        where = self._where(step.id, loop is not None)
        outputs = {port.name: f"{where}/{port.name}" for port in component.outputs}
        # GitHub Actions has no retries, and `timeout-minutes` ends the whole job: the step
        # runtime keeps each attempt to the step's timeout and retries it itself.
        invocation: Invocation[str] = Invocation.of(
            component, self.settings.code_root, inputs, outputs
        ).with_attempts(step.timeout, step.retries, step.retry_delay)
        run_env.update(self._run_env(step, loop is not None))
        key = step_cache_key(self.layout.pipeline.id, step, component, image)
        if key is not None and self.settings.artifacts == "store":
            # GitHub reuses nothing: the runtime's own cache, indexed in the artifact root. The
            # key enters through env: like every value (a `$` in it is `\u0024`).
            run_env["PIPEC_CACHE_KEY"] = json_env_text(json.loads(key))
            invocation = invocation.with_cache(
                shell.ref("PIPEC_ARTIFACT_ROOT"), shell.ref("PIPEC_CACHE_KEY")
            )
        argv = [self.settings.python, "-m", JOB_MODULE, "step", *options, "--", *invocation.argv()]
        steps = self._prelude() + self._downloads(step)
        steps.append({"id": "run", "env": run_env, "run": shell.command(argv)})
        steps += self._uploads(step, component, loop is not None)
        job["steps"] = steps
        job_outputs = {name: expr(f"steps.run.outputs.{name}") for name in exported}
        for name in looped:
            job_outputs[f"{name}-indices"] = expr(f"steps.run.outputs.{name}-indices")
        if job_outputs:
            job["outputs"] = job_outputs
        return job

    def _where(self, step_id: str, in_loop: bool) -> str:
        """The step's output folder prefix in the store (shell placeholders for run and index)."""
        base = f"{shell.ref('PIPEC_ARTIFACT_ROOT')}/{shell.ref('PIPEC_RUN_ID')}/{step_id}"
        return f"{base}/{shell.ref('PIPEC_INDEX')}" if in_loop else base

    def _inputs(
        self, step: Step, in_loop: bool
    ) -> tuple[dict[str, str], list[str], dict[str, str]]:
        """The run step's env, the wrapper's loop options, and the runtime's input SOURCEs."""
        env: dict[str, str] = {}
        options: list[str] = []
        inputs: dict[str, str] = {}
        depth = self.layout.step_depth(step.id)
        nested: list[str] = []  # loops whose items `job` finds through PIPEC_LOOPS
        for name, binding in sorted(step.args.items()):
            var = f"PIPEC_IN_{name}"
            match binding:
                case Const():
                    env[var] = json_env_text(binding.value)
                    inputs[name] = source(SourceKind.ENV, var)
                case ParamRef():
                    env[var] = output_of(lay.PARAMS_JOB, binding.param)
                    inputs[name] = source(SourceKind.ENV, var)
                case OutputRef():
                    if lay.travels_as_output(self.layout, self.env, binding, step.id):
                        env[var] = output_of(binding.step, binding.output)
                        inputs[name] = source(SourceKind.ENV, var)
                    elif 0 < (made := self.layout.step_depth(binding.step)) < depth:
                        # made at an outer iteration: `job` cuts this one's index to it
                        options += ["--outer", f"{name}={binding.step}/{binding.output}={made}"]
                    else:
                        where = self._where(binding.step, made > 0 and in_loop)
                        inputs[name] = source(SourceKind.ARTIFACT, f"{where}/{binding.output}")
                case LoopItem() if depth > 1:
                    nested.append(binding.loop)
                    options += ["--loop-item", f"{name}={binding.loop}"]
                case LoopItem():
                    env["PIPEC_ITEMS"] = self._items_env(binding.loop)
                    options += ["--item", f"{name}=PIPEC_ITEMS"]
                case Collect() if self.layout.depth(binding.loop) > 1:
                    nested.append(binding.loop)
                    produced = f"{binding.step}/{binding.output}"
                    options += ["--loop-collect", f"{name}={produced}={binding.loop}"]
                case Collect():
                    items_var = f"PIPEC_ITEMS_{binding.loop}"
                    env[items_var] = self._items_env(binding.loop)
                    options += ["--collect", f"{name}={binding.step}/{binding.output}={items_var}"]
        options += self._iteration_tests(step.id, env, nested)
        if nested:
            self._loops_env(nested, env)
        return env, options, inputs

    def _run_env(self, step: Step, in_loop: bool) -> dict[str, str]:
        # The step context (`pipec.context()`, runtime/context.py): names are identifiers and
        # the expressions GitHub's own numbers, so nothing here can inject into the run line.
        env = {
            "PIPEC_ARTIFACT_ROOT": self._root(),
            "PIPEC_RUN_ID": expr("github.run_id"),
            "PIPEC_PIPELINE": self.layout.pipeline.name,
            "PIPEC_STEP_ID": step.id,
            "PIPEC_ATTEMPT": expr("github.run_attempt"),
        }
        if in_loop:
            env["PIPEC_INDEX"] = expr("matrix.index")
            env["PIPEC_ITERATION"] = expr("matrix.index")
        else:
            env["PIPEC_ITERATION"] = ""  # outside a foreach: `()`, as on every target
        if step.env:
            env["PIPEC_ENV"] = json_env_text(step.env)
        for name in step.secrets:
            env[name] = expr(f"secrets.{name}")
        return env

    def _artifact_path(self, step_id: str, output: str) -> str:
        return f"{self._root()}/{expr('github.run_id')}/{step_id}/{output}"

    def _downloads(self, step: Step) -> list[dict[str, Any]]:
        """`artifacts = "github"`: fetch the artifact inputs made by earlier jobs."""
        if self.settings.artifacts != "github":
            return []
        found = []
        for binding in step.args.values():
            if isinstance(binding, OutputRef) and not self._is_value(binding):
                found.append(
                    {
                        "uses": pins.uses("actions/download-artifact"),
                        "with": {
                            "name": f"{binding.step}-{binding.output}",
                            "path": self._artifact_path(binding.step, binding.output),
                        },
                    }
                )
        return found

    def _uploads(self, step: Step, component: Component, in_loop: bool) -> list[dict[str, Any]]:
        """`artifacts = "github"`: hand artifact outputs to later jobs."""
        if self.settings.artifacts != "github" or in_loop:
            return []
        return [
            {
                "uses": pins.uses("actions/upload-artifact"),
                "with": {
                    "name": f"{step.id}-{port.name}",
                    "path": self._artifact_path(step.id, port.name),
                    "if-no-files-found": "error",
                },
            }
            for port in component.outputs
            if not types.is_value(port.type)
        ]

    def _is_value(self, ref: OutputRef) -> bool:
        return types.is_value(self.env.outputs.get((ref.step, ref.output), "any"))

    def test_job(self, condition: Condition) -> dict[str, Any]:
        """The job that decides `condition` in Python (`job decide`)."""
        job_id = lay.test_job(condition.id)
        job = self._frame(job_id, self.settings.runner_for(None, None) or "ubuntu-latest")
        env = {"PIPEC_TEST": json_env_text(condition.test.model_dump(mode="json"))}
        options: list[str] = []
        seen: dict[str, str] = {}
        for operand in graph.expr_operands(condition.test):
            match operand:
                case ParamRef():
                    key = f"params.{operand.param}"
                    value = output_of(lay.PARAMS_JOB, operand.param)
                case OutputRef():
                    key = f"steps.{operand.step}.{operand.output}"
                    value = output_of(operand.step, operand.output)
                case Const() | LoopItem():
                    continue
            if key not in seen:
                seen[key] = f"PIPEC_OP_{len(seen) + 1}"
                env[seen[key]] = value
                options += ["--operand", f"{key}={seen[key]}"]
        argv = [self.settings.python, "-m", JOB_MODULE, "decide", *options]
        run = {"id": "run", "env": env, "run": shell.command(argv)}
        job["steps"] = [*self._prelude(), run]
        job["outputs"] = {"holds": expr("steps.run.outputs.holds")}
        return job

    def params_job(
        self, declared: list[dict[str, Any]], packed: str | None, unwritten: list[str]
    ) -> dict[str, Any]:
        """The job that checks every parameter once and hands each on as a job output."""
        job = self._frame(lay.PARAMS_JOB, self.settings.runner_for(None, None) or "ubuntu-latest")
        env = {"PIPEC_INPUTS": expr("toJSON(inputs)"), "PIPEC_DECLARED": json_env_text(declared)}
        if self.layout.looped_params:
            env["PIPEC_LOOPED"] = json_env_text(self.layout.looped_params)
        if packed:
            env["PIPEC_PACKED"] = packed
        if unwritten:
            env["PIPEC_EMPTY_IS_DEFAULT"] = json_env_text(unwritten)
        argv = [self.settings.python, "-m", JOB_MODULE, "params"]
        job["steps"] = [*self._prelude(), {"id": "run", "env": env, "run": shell.command(argv)}]
        names = sorted(str(p["name"]) for p in declared)
        outputs = {name: expr(f"steps.run.outputs.{name}") for name in names}
        for name in self.layout.looped_params:
            outputs[f"{name}-indices"] = expr(f"steps.run.outputs.{name}-indices")
        job["outputs"] = outputs
        return job
