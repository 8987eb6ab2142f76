"""Starting and resuming runs: run ids, the project's state folder, the run record.

`run_plan` starts a run of a plan with an executor; `resume_run` continues one that crashed or was
interrupted (its plan comes from the metadata store, so no source is needed). Both hand the run to
the scheduler (`runner.scheduler`). Run layout under the project:

    .pipec/metadata.db                      runs, steps, artifacts, lineage
    .pipec/<run_id>/<step_id>[/<i>...]/...  artifacts (default artifact root; see `store`)
    .pipec/logs/<run_id>/<step_id>[.<i>...].log
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipec.backends.params import resolve_params
from pipec.backends.runner import plan as plans
from pipec.backends.runner.executor import Executor
from pipec.backends.runner.metadata import MetadataStore, RunRecord
from pipec.backends.runner.results import RunError, RunResult
from pipec.backends.runner.reuse import check_code_unchanged
from pipec.backends.runner.scheduler import Runner

STATE_DIR = ".pipec"


def state_dir(project_root: Path) -> Path:
    """The project's `.pipec/` folder."""
    return project_root / STATE_DIR


def open_metadata(project_root: Path) -> MetadataStore:
    """The project's metadata store."""
    return MetadataStore(state_dir(project_root) / "metadata.db")


def new_run_id() -> str:
    """Sortable by start time, unique across concurrent runs."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def run_plan(
    plan: plans.Plan,
    params: Mapping[str, Any],
    project_root: Path,
    executor: Executor[Any],
    *,
    no_cache: bool = False,
    parallelism: int | None = None,
    view: str = "auto",
) -> RunResult:
    """Run a plan with parameter values (defaults filled in here) and wait for the end."""
    values = resolve_params(plan.declared_params, params)
    metadata = open_metadata(project_root)
    run = RunRecord(
        run_id=new_run_id(),
        pipeline_id=plan.pipeline.id,
        pipeline_name=plan.pipeline.name,
        status="running",
        started_at=time.time(),
        ended_at=None,
        params=values,
        plan=plan.model_dump_json(),
        project_root=str(project_root),
        artifact_root=_artifact_root(plan.settings.artifact_root, project_root),
        runner_pid=os.getpid(),
        runner_host=socket.gethostname(),
    )
    metadata.create_run(run)
    runner = Runner(
        run,
        plan,
        metadata,
        executor,
        state_dir(project_root),
        no_cache=no_cache,
        parallelism=parallelism,
        view=view,
    )
    return runner.execute()


def resume_run(
    run_id: str,
    project_root: Path,
    executor: Executor[Any],
    *,
    parallelism: int | None = None,
    view: str = "auto",
) -> RunResult:
    """Continue a run: steps that finished are kept, everything else runs (again)."""
    metadata = open_metadata(project_root)
    run = metadata.get_run(run_id)
    if run is None:
        raise RunError(f"no run {run_id!r} in {metadata.path}")
    if run.status == "running" and _runner_alive(run):
        raise RunError(f"run {run_id} is still in progress (runner pid {run.runner_pid})")
    try:
        plan = plans.load(run.plan)
    except plans.PlanVersionError as exc:
        raise RunError(
            f"run {run_id} was recorded by another version of pipec ({exc}) and cannot be "
            "resumed: start a new run (unchanged steps come from the cache)"
        ) from None
    check_code_unchanged(plan, run_id, project_root)
    previous = {(r.step_id, r.iteration): r for r in metadata.steps_of(run_id)}
    metadata.set_run_status(run_id, "running", ended=False, runner_pid=os.getpid())
    runner = Runner(
        run,
        plan,
        metadata,
        executor,
        state_dir(project_root),
        parallelism=parallelism,
        view=view,
        previous=previous,
    )
    return runner.execute()


def _runner_alive(run: RunRecord) -> bool:
    if run.runner_pid is None or run.runner_host != socket.gethostname():
        return False
    if run.runner_pid == os.getpid():
        return False
    try:
        os.kill(run.runner_pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _artifact_root(configured: str | None, project_root: Path) -> str:
    if not configured:
        return str(state_dir(project_root))
    if "://" in configured:
        return configured.rstrip("/")
    path = Path(configured)
    return str(path if path.is_absolute() else project_root / path)
