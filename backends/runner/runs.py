"""Starting and resuming runs: run ids, the project's state folder, the run record, its owner.

`run_plan` starts a run of a plan with an executor; `resume_run` continues one that crashed or was
interrupted (its plan and options come from the metadata store, so no source is needed). Either
holds the run (`MetadataStore.claim_run`) while it runs: a second `--resume` of a run that is
running or being resumed is refused with the holder's pid. Both hand the run to the scheduler
(`runner.scheduler`). Run layout under the project:

    .pipec/metadata.db                      runs, steps, artifacts, lineage
    .pipec/<run_id>/<step_id>[/<i>...]/...  artifacts (default artifact root; see `store`)
    .pipec/logs/<run_id>/<step_id>[.<i>...].log
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipec.backends.params import resolve_params
from pipec.backends.runner import owner as owners
from pipec.backends.runner import plan as plans
from pipec.backends.runner.executor import Executor
from pipec.backends.runner.metadata import MetadataStore
from pipec.backends.runner.preflight import check_artifact_root
from pipec.backends.runner.records import Owner, RunRecord
from pipec.backends.runner.results import RunError, RunResult
from pipec.backends.runner.reuse import check_code_unchanged
from pipec.backends.runner.scheduler import Runner
from pipec.backends.runtime import store

STATE_DIR = ".pipec"


class RunBusy(RunError):
    """Another process holds the run."""


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
    artifact_root = _artifact_root(plan.settings.artifact_root, project_root)
    check_artifact_root(artifact_root)
    metadata = open_metadata(project_root)
    me = owners.current("run")
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
        artifact_root=artifact_root,
        owner=me,
        options={"no_cache": no_cache, "parallelism": parallelism},
    )
    executor.prepare(plan, project_root)
    try:
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
    except BaseException:
        executor.close()
        raise
    return runner.execute()


def resume_run(
    run_id: str,
    project_root: Path,
    executor: Executor[Any],
    *,
    no_cache: bool = False,
    parallelism: int | None = None,
    view: str = "auto",
) -> RunResult:
    """Continue a run: steps that finished are kept, everything else runs (again), with the
    run's own options (`no_cache` given here adds to them; `parallelism` given here wins)."""
    metadata = open_metadata(project_root)
    run = metadata.get_run(run_id)
    if run is None:
        raise RunError(f"no run {run_id!r} in {metadata.path}")
    check_artifact_root(run.artifact_root)
    me = owners.current("resume")
    holder = metadata.claim_run(run_id, me)
    if holder is not None:
        raise RunBusy(_busy(run_id, holder))
    prepared = False
    try:
        plan = _resumable_plan(run, project_root)
        executor.prepare(plan, project_root)
        prepared = True
        options = {
            "no_cache": no_cache or bool(run.options.get("no_cache")),
            "parallelism": parallelism or run.options.get("parallelism"),
        }
        previous = {(r.step_id, r.iteration): r for r in metadata.steps_of(run_id)}
        # No step of this run runs now (the run is ours): what a killed one was writing goes.
        if not store.is_remote(run.artifact_root):
            store.remove_staging(store.local_path(run.artifact_root) / run_id, recursive=True)
        metadata.reopen_run(run_id, options)
        run.owner, run.options = me, options
        runner = Runner(
            run,
            plan,
            metadata,
            executor,
            state_dir(project_root),
            no_cache=bool(options["no_cache"]),
            parallelism=options["parallelism"],
            view=view,
            previous=previous,
        )
    except BaseException:
        if prepared:
            executor.close()
        metadata.release_run(run_id, me)
        raise
    return runner.execute()


def _resumable_plan(run: RunRecord, project_root: Path) -> plans.Plan:
    try:
        plan = plans.load(run.plan)
    except plans.PlanVersionError as exc:
        raise RunError(
            f"run {run.run_id} was recorded by another version of pipec ({exc}) and cannot be "
            "resumed: start a new run (unchanged steps come from the cache)"
        ) from None
    check_code_unchanged(plan, run.run_id, project_root)
    return plan


def _busy(run_id: str, holder: Owner) -> str:
    doing = "resumed" if holder.role == "resume" else "run"
    if owners.alive(holder) is None:
        return (
            f"run {run_id} is being {doing} by pid {holder.pid} on host {holder.host}, which "
            f"pipec cannot check from here; if that process is gone, `pipec runs unlock "
            f"{run_id}` releases the run"
        )
    return (
        f"run {run_id} is being {doing} by pid {holder.pid}; wait for it to end (or stop that "
        "process), then resume it"
    )


def unlock_run(run_id: str, project_root: Path) -> Owner:
    """Release a run whose holder is gone (or on another host, where pipec cannot check);
    return the holder released. A holder alive on this host is never released."""
    metadata = open_metadata(project_root)
    run = metadata.get_run(run_id)
    if run is None:
        raise RunError(f"no run {run_id!r} in {metadata.path}")
    holder = run.owner
    if holder is None:
        raise RunError(f"run {run_id} is not held by any process")
    if owners.alive(holder):
        raise RunBusy(_busy(run_id, holder))
    if not metadata.unlock_run(run_id, holder):
        raise RunError(f"run {run_id} changed hands meanwhile; look again")
    return holder


def _artifact_root(configured: str | None, project_root: Path) -> str:
    if not configured:
        return str(state_dir(project_root))
    if "://" in configured:
        return configured.rstrip("/")
    path = Path(configured)
    return str(path if path.is_absolute() else project_root / path)
