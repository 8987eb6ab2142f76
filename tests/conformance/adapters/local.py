"""The `local` target's adapter: plan.json checked by the runtime's own argument parser, runs
through the `pipec run` command line. Its runs are the reference every other target is held to."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipec import driver
from pipec.backends.base import Bundle
from pipec.backends.runtime.invocation import RUNTIME_MODULE, InvocationError, parse
from tests.conformance.harness import Outputs, RunFailed, Seen, StepView
from tests.conformance.outputs import stored_outputs

# The plan's run-time placeholders (pipec.backends.runner.plan) and a stand-in for each, so the
# runtime's parser sees a command line of the shape a run gives it.
_PLACEHOLDER = re.compile(r"\{(python|project_root|artifact_root|run_id|iteration|input:\w+)\}")
_STAND_INS = {
    "python": "python3",
    "project_root": "/project",
    "artifact_root": "/artifacts",
    "run_id": "run",
    "iteration": "/0",
}


def _stand_in(match: re.Match[str]) -> str:
    name = match.group(1)
    return "value:null" if name.startswith("input:") else _STAND_INS[name]


def _runtime_nodes(plan: Any) -> Iterator[dict[str, Any]]:
    """Every plan node whose command runs the step runtime (wherever the plan keeps them)."""
    if isinstance(plan, dict):
        command = plan.get("command")
        if isinstance(command, list) and RUNTIME_MODULE in command:
            yield plan
        for value in plan.values():
            yield from _runtime_nodes(value)
    elif isinstance(plan, list):
        for value in plan:
            yield from _runtime_nodes(value)


def _argv(command: list[str]) -> list[str]:
    return command[command.index(RUNTIME_MODULE) + 1 :]


def cli_run(
    ref: str,
    params: Mapping[str, Any],
    artifacts: Path,
    env: Mapping[str, str],
    settings: Sequence[str] = (),
) -> Outputs:
    """`pipec run REF --target local --json` in REF's folder with exactly `env`; its outputs."""
    command = [sys.executable, "-m", "pipec.cli", "run", ref, "--target", "local", "--json"]
    command += ["--no-cache", "--view", "quiet", "--set", f"artifact_root={artifacts}"]
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


class LocalHarness:
    """This machine: pipec's own scheduler and fork executor."""

    id = "local"
    target = "local"
    settings: tuple[str, ...] = ()
    needs_image = False

    def compile(self, ref: str, extra: Sequence[str] = ()) -> Bundle:
        return driver.compile_ref(ref, self.target, [*self.settings, *extra])

    def steps(self, bundle: Bundle) -> dict[str, StepView]:
        plan = json.loads(bundle["plan.json"])
        # The local executor hands a step its env as written: no engine expands it.
        return {
            node["id"]: StepView(_argv(node["command"]), dict(node.get("env") or {}))
            for node in _runtime_nodes(plan)
        }

    def validate(self, bundles: Mapping[str, Bundle]) -> dict[str, Seen]:
        seen: dict[str, Seen] = {}
        for label, bundle in bundles.items():
            plan = json.loads(bundle["plan.json"])
            for node in _runtime_nodes(plan):
                argv = [_PLACEHOLDER.sub(_stand_in, arg) for arg in _argv(node["command"])]
                try:
                    parse(argv)
                except InvocationError as exc:
                    raise AssertionError(f"{label}: step {node['id']!r}: {exc}") from None
            params = {name: spec.get("default") for name, spec in plan["params"].items()}
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
    ) -> Outputs:
        # The local target reads a step's secrets from the environment of `pipec run`.
        return cli_run(ref, params, workdir / "artifacts", {**env, **secrets}, self.settings)
