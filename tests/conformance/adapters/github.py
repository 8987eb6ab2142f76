"""The `github` target's adapter: GitHub Actions workflows.

Checked with the three tools GitHub users run on workflows (tests/github_check.py: actionlint,
zizmor, check-jsonschema). A step is a job whose `run:` line calls pipec's job wrapper
(`python3 -m pipec.backends.github.job step ... -- <runtime argv>`); how its process starts is
worked out the way the runner does it: GitHub evaluates `${{ }}` in `env:` values (the ones
pipec writes name run-time values only; they become stand-ins here), bash splits the line
(bash itself does it, with that env), and the wrapper adds the step's own env (`PIPEC_ENV`, a
JSON object). Runs here with act in host mode (`pipec run --target github --set via=act`), in
this process's environment.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from pipec import driver
from pipec.backends.base import Bundle
from pipec.backends.files import write_files
from pipec.backends.runtime.invocation import InvocationError, parse
from tests.conformance.adapters.local import cli_run, run_options, steps_as_written
from tests.conformance.harness import Harness, Outputs, Seen, StepView
from tests.github_check import problems, tool

WRAPPER = "pipec.backends.github.job"
_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)
# Variables the runner sets itself that a `run:` line may name (backends/github/shell.py).
_RUNNER_VARIABLES = {"RUNNER_TEMP": "<runner temp>"}


def _workflows(bundle: Bundle) -> dict[str, dict[str, Any]]:
    return {
        path: yaml.safe_load(text)
        for path, text in bundle.items()
        if path.startswith(".github/workflows/")
    }


def _evaluated(env: Mapping[str, Any]) -> dict[str, str]:
    """A step's `env:` after GitHub's expression evaluation: an expression (pipec writes them
    only for run-time values: other jobs' outputs, the run id, the matrix) becomes a stand-in
    that no value can equal; the rest is as written."""
    return {
        name: _EXPRESSION.sub(lambda m: f"<github: {m.group(1).strip()}>", str(value))
        for name, value in env.items()
    }


def _words(line: str, env: Mapping[str, str]) -> list[str]:
    """The words bash makes of a `run:` line (with `env`), by asking bash."""
    if "${{" in line:
        raise AssertionError(f"an expression in a run: line is evaluated into the script: {line}")
    done = subprocess.run(
        ["bash", "-c", "printf '%s\\0' " + line],
        env={**_RUNNER_VARIABLES, **env},
        capture_output=True,
        cwd=tempfile.gettempdir(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.decode("utf-8").split("\0")[:-1]


def github_steps(bundle: Bundle) -> dict[str, StepView]:
    """Step id (the job id) -> the step's runtime argv and env as its process starts."""
    found: dict[str, StepView] = {}
    for workflow in _workflows(bundle).values():
        for job_id, job in workflow["jobs"].items():
            for step in job.get("steps", []):
                line = step.get("run", "")
                if f"{WRAPPER} step" not in line:
                    continue
                written = step.get("env", {})
                env = _evaluated(written)
                words = _words(line, env)
                own = json.loads(env.pop("PIPEC_ENV", "{}"))
                later = frozenset(k for k, v in written.items() if "${{" in str(v))
                found[job_id] = StepView(words[words.index("--") + 1 :], {**env, **own}, later)
    return found


def dispatch_defaults(workflow: Mapping[str, Any]) -> dict[str, Any]:
    """The parameter defaults a dispatched run reads: an input's `default` as GitHub hands it to
    the params job, decoded the way that job decodes it (a `str` parameter's text as it is,
    numbers and booleans as GitHub types them, the rest JSON text), or, for an input pipec leaves
    empty (`PIPEC_EMPTY_IS_DEFAULT`: a default GitHub could not hold as written), the declared
    default the params job applies (`PIPEC_DECLARED`)."""
    triggers = workflow["on"] or {}  # pipec quotes the key: YAML 1.1 would read `on` as true
    inputs = (triggers.get("workflow_dispatch") or {}).get("inputs") or {}
    params_env: dict[str, str] = {}
    for step in workflow["jobs"].get("params", {}).get("steps", []):
        if f"{WRAPPER} params" in step.get("run", ""):
            params_env = _evaluated(step.get("env", {}))
    assert "PIPEC_PACKED" not in params_env, "packed parameters: not read by this adapter yet"
    declared = {p["name"]: p for p in json.loads(params_env.get("PIPEC_DECLARED", "[]"))}
    applied = set(json.loads(params_env.get("PIPEC_EMPTY_IS_DEFAULT", "[]")))
    found = {}
    for name, spec in inputs.items():
        if name in applied:
            assert "default" not in spec, f"input {name}: a default and one applied by pipec"
            found[name] = declared[name]["default"]
            continue
        value = spec.get("default")
        if isinstance(value, str) and declared[name]["type"] != "str":
            value = json.loads(value)
        found[name] = value
    return found


class GithubHarness:
    """GitHub Actions; act runs the workflow here."""

    id = target = "github"
    # GPU steps need a runner label that has GPUs (declared to actionlint as self-hosted).
    gpu_label = "pipec-gpu"
    settings: tuple[str, ...] = (
        "artifact_root=/srv/pipec-artifacts",
        f'runners={{"gpu": "{gpu_label}"}}',
    )
    needs_image = False

    def compile(self, ref: str, extra: Sequence[str] = ()) -> Bundle:
        return driver.compile_ref(ref, self.target, [*self.settings, *extra])

    def steps(self, bundle: Bundle) -> dict[str, StepView]:
        return github_steps(bundle)

    def validate(self, bundles: Mapping[str, Bundle]) -> dict[str, Seen]:
        seen: dict[str, Seen] = {}
        with tempfile.TemporaryDirectory(prefix="pipec-github-") as scratch:
            for number, (label, bundle) in enumerate(bundles.items()):
                folder = Path(scratch) / str(number)
                write_files(bundle, folder)
                (workflow,) = sorted((folder / ".github" / "workflows").glob("*.yml"))
                found = problems(workflow, (self.gpu_label,))
                assert not found, f"{label}: {found}"
                for step, view in github_steps(bundle).items():
                    try:
                        parse(view.argv)
                    except InvocationError as exc:
                        raise AssertionError(f"{label}: job {step!r}: {exc}") from None
                (text,) = [t for p, t in bundle.items() if p.startswith(".github/workflows/")]
                seen[label] = Seen(dispatch_defaults(yaml.safe_load(text)))
        return seen

    def step_env(self, base: Mapping[str, str]) -> dict[str, str]:
        # act's host mode runs every job as a process of this machine, in act's environment.
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
        # act reads a secret's value from its environment, as the local target does. (The run
        # has its own artifact_root, so the step runtime's cache starts empty there.)
        settings = [s for s in self.settings if not s.startswith("artifact_root=")]
        settings += ["via=act", f"act={tool('act')}"]
        outputs = cli_run(
            ref,
            params,
            workdir / "artifacts",
            {**env, **secrets},
            settings,
            target=self.target,
            options=run_options(optimize),
        )
        # github fuses chains by default: name a fused job's outputs by the steps as written.
        return steps_as_written(outputs, ref, self.target, settings, optimize)


ADAPTERS: list[Harness] = [GithubHarness()]
