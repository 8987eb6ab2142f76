"""The driver: pipec's shared scheduler with the Kubernetes-Job executor.

In the cluster (`python -m pipec.backends.kubernetes.driver --config DIR`, the driver Job): the
plan and settings come from the mounted ConfigMap, the run id from `PIPEC_RUN_ID` (the run's id
from `pipec run`, or the Job's uid for a `kubectl apply`d Job, the same for every pod the Job
restarts), the parameters from `PIPEC_PARAMS`. Its metadata store lives in scratch space; what
survives a restart is the journal (`journal`) and the Jobs themselves (the executor adopts
them), so a restarted driver runs only what has not finished. SIGTERM (the pod is evicted,
preempted, drained or deleted) therefore ends the driver at once and leaves the step Jobs
running, where a local run stops its steps (`runner.signals`): the next driver adopts them.

On this machine (`driver=local`): the same scheduler and executor with the project's metadata
store, so `pipec runs`, `pipec logs` and `pipec run --resume` work as for the local target.

The scheduler's capacity check is the cluster's business here: a step waits for room as a
Pending pod, not in the driver, so the runner gets `parallelism` slots and unbounded CPU and
memory (the driver's own machine says nothing about the cluster's).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipec.backends.kubernetes import client, manifests
from pipec.backends.kubernetes.executor import JobExecutor
from pipec.backends.kubernetes.journal import Journal, JournaledMetadata
from pipec.backends.kubernetes.settings import KubernetesTargetSettings
from pipec.backends.params import resolve_params
from pipec.backends.runner import owner as owners
from pipec.backends.runner import plan as plans
from pipec.backends.runner import runs
from pipec.backends.runner.capacity import Capacity
from pipec.backends.runner.metadata import MetadataStore
from pipec.backends.runner.records import RunRecord, StepRecord
from pipec.backends.runner.results import RunError, RunResult
from pipec.backends.runner.reuse import check_code_unchanged
from pipec.backends.runner.scheduler import Runner
from pipec.backends.runtime import store
from pipec.backends.settings import SettingsError

if TYPE_CHECKING:
    from pipec.backends.base import RunOptions
    from pipec.backends.kubernetes import KubernetesBackend
    from pipec.ir.model import Pipeline


def cluster_capacity(parallelism: int) -> Capacity:
    """`parallelism` slots; CPU and memory are the cluster's to give (memory 0: unchecked)."""
    return Capacity(parallelism=parallelism, cpus=math.inf, memory=0)


def execute(
    run: RunRecord,
    plan: plans.Plan,
    metadata: MetadataStore,
    executor: JobExecutor,
    state_dir: Path,
    *,
    previous: Mapping[tuple[str, str], StepRecord],
    parallelism: int,
    view: str,
    no_cache: bool = False,
) -> RunResult:
    """Run (or continue) `run` to its end with the Job executor, which the caller prepared
    (`Executor.prepare`) before it recorded the run; the executor is closed however this ends."""
    try:
        runner = Runner(
            run,
            plan,
            metadata,
            executor,
            state_dir,
            no_cache=no_cache,
            parallelism=parallelism,
            view=view,
            previous=previous,
            capacity=cluster_capacity(parallelism),
        )
    except BaseException:
        executor.close()
        raise
    return runner.execute()


# ------------------------------------------------------------------------------ in the cluster


def read_config(folder: Path) -> tuple[plans.Plan, KubernetesTargetSettings]:
    """The plan and settings from the mounted ConfigMap."""
    settings_text = (folder / manifests.SETTINGS_KEY).read_text(encoding="utf-8")
    settings = KubernetesTargetSettings.model_validate_json(settings_text)
    plain = folder / manifests.PLAN_KEY
    if plain.exists():
        plan_text = plain.read_text(encoding="utf-8")
    else:  # kubelet writes binaryData decoded; accept base64 text too
        raw = (folder / manifests.PLAN_GZIP_KEY).read_bytes()
        if not raw.startswith(b"\x1f\x8b"):
            raw = base64.b64decode(raw)
        plan_text = gzip.decompress(raw).decode("utf-8")
    return plans.load(plan_text), settings


class PodStopping(SystemExit):
    """The driver's pod is being stopped (SIGTERM)."""


def _leave_steps_running(signum: int, frame: object) -> None:
    # Not the runner's interrupt (which deletes the running step Jobs): the next driver pod
    # adopts them. Being a handler (not SIG_DFL), it is left alone by `runner.signals`.
    print(
        "pipec driver: stopping (SIGTERM); step Jobs keep running for the next driver", flush=True
    )
    raise PodStopping(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """The driver Job's entry point; exit code 0 when the run succeeded."""
    signal.signal(signal.SIGTERM, _leave_steps_running)
    parser = argparse.ArgumentParser(prog=f"python -m {manifests.DRIVER_MODULE}")
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)
    plan, settings = read_config(args.config)
    run_id = os.environ["PIPEC_RUN_ID"]
    params = json.loads(os.environ.get("PIPEC_PARAMS") or "{}")
    root = plan.settings.artifact_root
    assert root is not None  # the backend always resolves it
    journal = Journal(root, run_id)
    previous = journal.load()
    state_dir = Path(tempfile.mkdtemp(prefix="pipec-driver-"))
    metadata = JournaledMetadata(state_dir / "metadata.db", journal)
    executor = JobExecutor(client.api_client(in_cluster=True), settings, plan.pipeline.id, run_id)
    executor.prepare(plan, Path(settings.code_root))
    run = RunRecord(
        run_id=run_id,
        pipeline_id=plan.pipeline.id,
        pipeline_name=plan.pipeline.name,
        status="running",
        started_at=time.time(),
        ended_at=None,
        params=resolve_params(plan.declared_params, params),
        plan=plan.model_dump_json(),
        project_root=settings.code_root,
        artifact_root=root,
        # The pod is the only process with this scratch store: the owner is for the record.
        owner=owners.current("run"),
        options={"no_cache": False, "parallelism": settings.parallelism},
    )
    metadata.create_run(run)
    if previous:
        print(
            f"pipec driver: resuming run {run_id}: {len(previous)} step(s) finished earlier",
            flush=True,
        )
    result = execute(
        run,
        plan,
        metadata,
        executor,
        state_dir,
        previous=previous,
        parallelism=settings.parallelism,
        view="plain",
    )
    print(f"pipec driver: run {run_id} {result.status}", flush=True)
    return result.exit_code


# ------------------------------------------------------------------------- on this machine


def _local_root(root: str) -> str:
    """A `driver=local` run reads step outputs itself: the artifact root must be an fsspec URL
    or a folder this machine has at the same path as the pods (a shared volume)."""
    if store.is_remote(root) or Path(root).is_dir():
        return root
    raise SettingsError(
        f"driver=local reads step outputs from {root!r}, which is not a folder on this machine: "
        "use an fsspec artifact_root (s3://, gs://, ...) or mount the volume here at the same path"
    )


def run_here(
    backend: KubernetesBackend, pipeline: Pipeline, params: dict[str, Any], options: RunOptions
) -> RunResult:
    """`pipec run --target kubernetes --set driver=local`: as `runner.runs.run_plan`, with the
    cluster's capacity instead of this machine's."""
    plan = backend.plan(pipeline)
    settings = backend.settings
    root = _local_root(plan.settings.artifact_root or "")
    project_root = backend.project_root
    parallelism = options.parallelism or settings.parallelism
    run_id = runs.new_run_id()
    executor = JobExecutor(
        client.api_client(context=settings.context), settings, plan.pipeline.id, run_id
    )
    executor.prepare(plan, project_root)
    run = RunRecord(
        run_id=run_id,
        pipeline_id=plan.pipeline.id,
        pipeline_name=plan.pipeline.name,
        status="running",
        started_at=time.time(),
        ended_at=None,
        params=resolve_params(plan.declared_params, params),
        plan=plan.model_dump_json(),
        project_root=str(project_root),
        artifact_root=root,
        owner=owners.current("run"),
        options={"no_cache": options.no_cache, "parallelism": parallelism},
    )
    try:
        metadata = runs.open_metadata(project_root)
        metadata.create_run(run)
    except BaseException:
        executor.close()
        raise
    return execute(
        run,
        plan,
        metadata,
        executor,
        runs.state_dir(project_root),
        previous={},
        parallelism=parallelism,
        view=options.view,
        no_cache=options.no_cache,
    )


def resume_here(backend: KubernetesBackend, run_id: str, options: RunOptions) -> RunResult:
    """`pipec run --resume RUN --target kubernetes --set driver=local`: finished steps are
    kept, Jobs still running are adopted, the rest runs, with the run's own options (as
    `runner.runs.resume_run`; unlike it, no staging is removed: an adopted Job may be writing)."""
    settings = backend.settings
    metadata = runs.open_metadata(backend.project_root)
    run = metadata.get_run(run_id)
    if run is None:
        raise RunError(f"no run {run_id!r} in {metadata.path}")
    me = owners.current("resume")
    holder = metadata.claim_run(run_id, me)
    if holder is not None:
        raise runs.RunBusy(
            f"run {run_id} is held by pid {holder.pid} on host {holder.host}: wait for it to "
            f"end (or stop it); if that process is gone, `pipec runs unlock {run_id}` releases it"
        )
    prepared = False
    try:
        try:
            plan = plans.load(run.plan)
        except plans.PlanVersionError as exc:
            raise RunError(f"run {run_id} cannot be resumed ({exc}): start a new run") from None
        check_code_unchanged(plan, run_id, backend.project_root)
        executor = JobExecutor(
            client.api_client(context=settings.context), settings, plan.pipeline.id, run_id
        )
        executor.prepare(plan, backend.project_root)
        prepared = True
        run_options = {
            "no_cache": options.no_cache or bool(run.options.get("no_cache")),
            "parallelism": options.parallelism or run.options.get("parallelism"),
        }
        previous = {(r.step_id, r.iteration): r for r in metadata.steps_of(run_id)}
        metadata.reopen_run(run_id, run_options)
        run.owner, run.options = me, run_options
    except BaseException:
        if prepared:
            executor.close()
        metadata.release_run(run_id, me)
        raise
    return execute(
        run,
        plan,
        metadata,
        executor,
        runs.state_dir(backend.project_root),
        previous=previous,
        parallelism=int(run_options["parallelism"] or settings.parallelism),
        view=options.view,
        no_cache=bool(run_options["no_cache"]),
    )


if __name__ == "__main__":
    sys.exit(main())
