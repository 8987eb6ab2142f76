"""The `local` target's adapter: plan.json read by the runner's own loader, every step's
arguments by the runtime's parser; runs through the `pipec run` command line. Its runs are the
reference every other target is held to."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipec import driver
from pipec.backends.base import Bundle
from pipec.backends.runner import plan as runner_plan
from pipec.backends.runtime.invocation import InvocationError, parse
from tests.conformance.harness import Harness, Outputs, RunFailed, Seen, StepView
from tests.conformance.outputs import stored_outputs
from tests.passes.equivalence import as_written

# A stand-in for each of the plan's run-time placeholders (pipec.backends.runner.plan), so the
# runtime's parser sees a command line of the shape a run gives it.
_STAND_INS = {
    "project_root": "/project",
    "artifact_root": "/artifacts",
    "run_id": "run",
    "iteration": "/0",
}


def _stand_in(name: str) -> str:
    return "value:null" if name.startswith("input:") else _STAND_INS[name]


def cli_run(
    ref: str,
    params: Mapping[str, Any],
    artifacts: Path,
    env: Mapping[str, str],
    settings: Sequence[str] = (),
    target: str = "local",
    options: Sequence[str] = ("--no-cache",),
) -> Outputs:
    """`pipec run REF --target TARGET --json` in REF's folder with exactly `env` (for targets
    whose runs pipec reports itself, their store under `artifacts`); every output."""
    command = [sys.executable, "-m", "pipec.cli", "run", ref, "--target", target, "--json"]
    command += [*options, "--view", "quiet", "--set", f"artifact_root={artifacts}"]
    for setting in settings:
        command += ["--set", setting]
    for name, value in params.items():
        # The CLI takes a str parameter's text as it is, and JSON for the other types.
        text = value if isinstance(value, str) else json.dumps(value)
        command += ["--param", f"{name}={text}"]
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=Path(ref).parent, env=dict(env), check=False
    )
    if done.returncode != 0:
        raise RunFailed(f"pipec run exited {done.returncode}:\n{done.stderr[-4000:]}")
    summary = json.loads(done.stdout)
    return stored_outputs(artifacts / summary["run_id"])


def run_options(optimize: bool, *more: str) -> tuple[str, ...]:
    """`pipec run` options: `more`, and `--no-optimize` when not optimizing."""
    return (*more, *(() if optimize else ("--no-optimize",)))


def steps_as_written(
    outputs: Outputs, ref: str, target: str, settings: Sequence[str], optimize: bool
) -> Outputs:
    """A run's outputs keyed by the steps as written: a fused step stores each member's outputs
    under its own folder (`<fused>/<member>__<output>`), named here by the member."""
    if not optimize:
        return outputs
    compiled = driver.prepare(ref, target, settings, images=False)
    return as_written(outputs, compiled.pipeline, [])


class LocalHarness:
    """This machine: pipec's own scheduler and fork executor."""

    id = "local"
    target = "local"
    settings: tuple[str, ...] = ()
    needs_image = False

    def compile(self, ref: str, extra: Sequence[str] = ()) -> Bundle:
        return driver.compile_ref(ref, self.target, [*self.settings, *extra])

    def steps(self, bundle: Bundle) -> dict[str, StepView]:
        plan = runner_plan.load(bundle["plan.json"])
        # The local executor hands a step its env as written: no engine expands it.
        return {
            step_id: StepView(list(step.runtime_args), dict(step.env))
            for step_id, step in plan.steps.items()
        }

    def validate(self, bundles: Mapping[str, Bundle]) -> dict[str, Seen]:
        """The runner's own loader reads plan.json; the runtime's parser reads every step's
        arguments with the placeholders filled the way the runner fills them."""
        seen: dict[str, Seen] = {}
        for label, bundle in bundles.items():
            plan = runner_plan.load(bundle["plan.json"])
            for step_id, step in plan.steps.items():
                argv = [runner_plan.render(arg, _stand_in) for arg in step.runtime_args]
                try:
                    parse(argv)
                except InvocationError as exc:
                    raise AssertionError(f"{label}: step {step_id!r}: {exc}") from None
            params = {p.name: p.default for p in plan.params if not p.required}
            seen[label] = Seen(params)
        return seen

    def step_env(self, base: Mapping[str, str]) -> dict[str, str]:
        return dict(base)

    def run(
        self,
        ref: str,
        params: Mapping[str, Any],
        workdir: Path,
        env: Mapping[str, str],
        secrets: Mapping[str, str],
        *,
        optimize: bool = True,
    ) -> Outputs:
        # The local target reads a step's secrets from the environment of `pipec run`.
        options = run_options(optimize, "--no-cache")
        outputs = cli_run(
            ref, params, workdir / "artifacts", {**env, **secrets}, self.settings, options=options
        )
        return steps_as_written(outputs, ref, self.target, self.settings, optimize)


ADAPTERS: list[Harness] = [LocalHarness()]
