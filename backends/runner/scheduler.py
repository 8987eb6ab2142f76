"""The scheduling loop: run a plan's step instances through an executor — parallel, cached, retried.

The runner is one thread. It asks the expansion (`runner.expansion`) which step instances are
ready, resolves their inputs (`runner.inputs`), reuses finished or cached results
(`runner.reuse`), and hands the rest to the executor (`runner.executor`) within the parallelism
and the machine's cpu/memory/GPUs (`runner.capacity`), longest remaining path first. It retries
failed attempts after their delay and records everything in the metadata store (`runner.metadata`).
SIGTERM and SIGHUP stop a run as Ctrl-C does: running steps are stopped and the run is recorded
as interrupted, ready to resume. Runs are started and resumed by `runner.runs`.
"""

from __future__ import annotations

import heapq
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic

from pipec.backends.runner import outputs, secrets
from pipec.backends.runner.capacity import Capacity, Request, oversized, request_of
from pipec.backends.runner.executor import Executor, Exit, H, Launch
from pipec.backends.runner.expansion import (
    CACHED,
    FAILED,
    SUCCEEDED,
    Expansion,
    ExpansionError,
    Instance,
    Key,
)
from pipec.backends.runner.inputs import Inputs, runtime_args
from pipec.backends.runner.metadata import MetadataStore
from pipec.backends.runner.plan import Plan
from pipec.backends.runner.records import (
    ArtifactRecord,
    RunRecord,
    StepRecord,
    iteration_key,
    parse_iteration,
)
from pipec.backends.runner.results import RunResult, label_of, step_result, with_values
from pipec.backends.runner.reuse import Reuse
from pipec.backends.runner.signals import Stopped, stop_signals_interrupt
from pipec.backends.runner.view import View, make_view
from pipec.backends.runtime import store
from pipec.backends.runtime.cache_key import cache_key, key_parts

TICK = 0.1
"""Seconds between redraws of the live view while steps run."""


def priorities(plan: Plan, measured: Mapping[str, float]) -> dict[str, float]:
    """Step id -> the longest remaining path from it to the end (itself included), each step
    weighted by its mean duration in earlier runs (their mean for steps never measured; 1 each
    with no history, i.e. a count of steps)."""
    fallback = sum(measured.values()) / len(measured) if measured else 1.0
    dependents: dict[str, list[str]] = {s: [] for s in plan.order}
    for step_id in plan.order:
        for producer in plan.step_dependencies(step_id):
            dependents[producer].append(step_id)
    longest: dict[str, float] = {}
    for step_id in reversed(plan.order):
        rest = max((longest[c] for c in dependents[step_id]), default=0.0)
        longest[step_id] = measured.get(step_id, fallback) + rest
    return longest


@dataclass
class _Attempts:
    """A ready step instance with its inputs resolved: waiting for a slot, running, or waiting
    to be retried."""

    argv: list[str]
    record: StepRecord
    request: Request
    image: str | None
    attempt: int = 0
    masks: list[str] = field(default_factory=list)
    gpus: tuple[str, ...] = ()
    """The GPU devices the running attempt holds."""


class Runner(Generic[H]):
    """Executes one run; see the module docstring."""

    def __init__(
        self,
        run: RunRecord,
        plan: Plan,
        metadata: MetadataStore,
        executor: Executor[H],
        state_dir: Path,
        *,
        no_cache: bool = False,
        parallelism: int | None = None,
        view: str = "auto",
        previous: Mapping[tuple[str, str], StepRecord] | None = None,
        capacity: Capacity | None = None,
    ) -> None:
        """`capacity`: what steps share (unset: this machine's, with the plan's settings; a step
        asking more than the machine has is a warning on stderr before the run starts)."""
        self.run = run
        self.plan = plan
        self.metadata = metadata
        self.executor = executor
        self.project_root = Path(run.project_root)
        self.log_dir = state_dir / "logs" / run.run_id
        settings = plan.settings
        if capacity is None:
            capacity = Capacity.of_machine(
                parallelism or settings.parallelism, settings.cpus, settings.memory, settings.gpus
            )
            asked = ((s.name, s.resources) for s in plan.steps.values())
            for warning in oversized(asked, capacity):
                print(warning.render(), file=sys.stderr, flush=True)  # before the view draws
        self.capacity = capacity
        self.expansion = Expansion(plan)
        self.needed = outputs.read_by_scopes(plan)
        self.outputs: dict[Key, dict[str, ArtifactRecord]] = {}
        self.inputs = Inputs(self.expansion, run.params, self.outputs)
        self.reuse = Reuse(run, metadata, no_cache=no_cache, previous=previous or {})
        self.places = {
            "project_root": str(self.project_root),
            "artifact_root": run.artifact_root,
            "run_id": run.run_id,
        }
        self.records: dict[Key, StepRecord] = {}
        self.ready: list[tuple[float, int, Instance]] = []
        self.attempts: dict[Key, _Attempts] = {}
        self.retries: list[tuple[float, int, Instance]] = []
        self.running: dict[H, Instance] = {}
        self.priority = priorities(plan, metadata.mean_durations(run.pipeline_id))
        self._seq = 0
        static = [s for s in plan.order if not plan.steps[s].loops]
        self.view: View = make_view(view, run.run_id, static)

    # ------------------------------------------------------------------------------ the loop

    def execute(self) -> RunResult:
        """Run to the end (or until interrupted) and return the result; the run's owner gives
        it up at the end."""
        status = "interrupted"
        started = time.monotonic()
        with stop_signals_interrupt():
            try:
                self.expansion.start(self.inputs.value_of)
                self._collect_ready()
                while not self.expansion.finished:
                    self._schedule()
                    if self.expansion.finished:
                        break
                    self.metadata.commit()
                    self._wait()
                status = self._final_status()
            except (KeyboardInterrupt, Stopped):
                self._interrupt()
            finally:
                self.executor.close()
                self.metadata.end_run(self.run.run_id, status, self.run.owner)
                self.view.close(status)
        return self._result(status, time.monotonic() - started)

    def _final_status(self) -> str:
        failed = any(r.status == FAILED for r in self.records.values())
        return FAILED if failed or self.expansion.errors else SUCCEEDED

    def _schedule(self) -> None:
        """Start every ready instance the capacity allows (and settle cached ones at once)."""
        now = time.monotonic()
        while self.retries and self.retries[0][0] <= now:
            _, _, instance = heapq.heappop(self.retries)
            self._push_ready(instance)
        blocked: list[tuple[float, int, Instance]] = []
        while self.ready:
            entry = heapq.heappop(self.ready)
            instance = entry[2]
            attempts = self.attempts.get(instance.key) or self._prepare(instance)
            if attempts is None:
                continue  # settled without running (cached, resumed, or failed to prepare)
            if not self.capacity.fits(attempts.request, len(self.running)):
                blocked.append(entry)
                if len(self.running) >= self.capacity.parallelism:
                    break
                continue
            self._launch(instance, attempts)
        for entry in blocked:
            heapq.heappush(self.ready, entry)

    def _wait(self) -> None:
        if not self.running and not self.retries:
            raise RuntimeError("runner: nothing running and nothing ready (internal)")
        now = time.monotonic()
        wake = now + TICK if self.running else now + 3600.0
        if self.retries:
            wake = min(wake, self.retries[0][0])
        if self.running:
            for handle, exit in self.executor.wait(list(self.running), max(0.0, wake - now)):
                self._finished(handle, exit)
        else:
            time.sleep(max(0.0, wake - now))
        self.view.tick()

    # ------------------------------------------------------------------------- preparation

    def _push_ready(self, instance: Instance) -> None:
        self._seq += 1
        heapq.heappush(self.ready, (-self.priority.get(instance.id, 0.0), self._seq, instance))

    def _collect_ready(self) -> None:
        while self.expansion.ready:
            self._push_ready(self.expansion.ready.popleft())
        while self.expansion.settled_without_running:
            instance = self.expansion.settled_without_running.popleft()
            self._record_not_run(instance.id, instance.ctx, instance.status, instance.reason)
        for step_id, ctx, status, reason in self.expansion.not_run:
            self._record_not_run(step_id, ctx, status, reason)
        self.expansion.not_run.clear()

    def _record_not_run(self, step_id: str, ctx: tuple[int, ...], status: str, why: str) -> None:
        record = self._new_record(step_id, ctx)
        record.status, record.reason, record.ended_at = status, why, time.time()
        self.records[(step_id, ctx)] = record
        self.metadata.save_step(record)
        self.view.step_changed(label_of(step_id, ctx), status, why)

    def _new_record(self, step_id: str, ctx: tuple[int, ...]) -> StepRecord:
        return StepRecord(
            run_id=self.run.run_id,
            step_id=step_id,
            iteration=iteration_key(ctx),
            name=self.plan.steps[step_id].name,
            status="pending",
        )

    def _complete(self, instance: Instance, status: str, reason: str = "") -> None:
        self.expansion.complete(instance, status, reason)
        self._collect_ready()

    def _prepare(self, instance: Instance) -> _Attempts | None:
        """Resolve a ready instance's inputs; settle it at once when its result exists."""
        step = instance.step
        record = self._new_record(instance.id, instance.ctx)
        try:
            resolved = self.inputs.resolve(step, instance)
        except (ExpansionError, FileNotFoundError, KeyError) as exc:
            self._fail(instance, record, f"inputs could not be resolved: {exc}")
            return None
        record.inputs = resolved.lineage
        image = step.image or self.plan.settings.image
        record.cache_parts = key_parts(
            step.component.code_hash, image, resolved.params, resolved.hashes, step.env
        )
        record.cache_key = cache_key(record.cache_parts)
        kept = self.reuse.kept(instance.id, record.iteration)
        if kept is not None:
            kept.artifacts = outputs.kept_in_memory(instance.id, kept.artifacts, self.needed)
            self.records[instance.key] = kept
            self.outputs[instance.key] = kept.artifacts
            self.view.step_changed(label_of(instance.id, instance.ctx), kept.status, "kept")
            self._complete(instance, kept.status, kept.reason)
            return None
        if self.reuse.cached(step, record):
            self._store_result(instance, record)
            self.view.step_changed(label_of(instance.id, instance.ctx), CACHED)
            self._complete(instance, CACHED, record.reason)
            return None
        argv = runtime_args(step, instance, resolved.sources, self.places)
        attempts = _Attempts(argv, record, request_of(step.resources, self.capacity), image)
        self.attempts[instance.key] = attempts
        return attempts

    def _store_result(self, instance: Instance, record: StepRecord) -> None:
        """Record a settled instance (with its output values), then hold it without the values
        no condition or loop reads."""
        self.metadata.save_step(record)
        record.artifacts = outputs.kept_in_memory(instance.id, record.artifacts, self.needed)
        self.records[instance.key] = record
        self.outputs[instance.key] = record.artifacts

    # ----------------------------------------------------------------------------- attempts

    def _launch(self, instance: Instance, attempts: _Attempts) -> None:
        step = instance.step
        record = attempts.record
        attempts.attempt += 1
        record.attempts = attempts.attempt
        record.status = "running"
        record.started_at = time.time()
        label = label_of(instance.id, instance.ctx)
        name = record.step_id + (f".{record.iteration}" if record.iteration else "")
        log_path = self.log_dir / f"{name}.log"
        record.log_path = str(log_path)
        try:
            secret_values = secrets.resolve(step.secrets, self.project_root)
        except secrets.MissingSecret as exc:
            self._fail(instance, record, str(exc))
            return
        attempts.masks = list(secret_values.values())
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if attempts.attempt > 1:
            with log_path.open("a", encoding="utf-8") as log:
                log.write(f"--- pipec: attempt {attempts.attempt} ---\n")
        env = {
            **step.env,
            **secret_values,
            "PIPEC_RUN_ID": self.run.run_id,
            "PIPEC_PIPELINE": self.run.pipeline_name,
            "PIPEC_STEP_ID": instance.id,
            "PIPEC_ITERATION": record.iteration,
            "PIPEC_ATTEMPT": str(attempts.attempt),
        }
        # Reserved before the start, because the GPUs it is given go into its environment.
        attempts.gpus = self.capacity.take(attempts.request)
        env.update(self.capacity.gpu_env(attempts.gpus))
        launch = Launch(
            step=step,
            label=label,
            attempt=attempts.attempt,
            argv=attempts.argv,
            env=env,
            log_path=log_path,
            cwd=self.project_root,
            masks=attempts.masks,
            image=attempts.image,
            gpus=attempts.gpus,
        )
        try:
            handle = self.executor.start(launch)
        except BaseException:
            self.capacity.release(attempts.request, attempts.gpus)
            raise
        self.running[handle] = instance
        self.metadata.save_step(record)
        detail = f"attempt {attempts.attempt}" if attempts.attempt > 1 else ""
        self.view.step_changed(label, "running", detail)

    def _finished(self, handle: H, exit: Exit) -> None:
        instance = self.running.pop(handle)
        self.executor.kill(handle)  # whatever the step left behind goes with it
        step = instance.step
        attempts = self.attempts[instance.key]
        self.capacity.release(attempts.request, attempts.gpus)
        attempts.gpus = ()
        record = attempts.record
        self._remove_staging(instance)
        if exit.code == 0:
            found = outputs.collect(
                self.run.artifact_root, self.run.run_id, instance.id, instance.ctx, step.outputs
            )
            if not isinstance(found, str):
                record.artifacts = found
                record.status, record.ended_at = SUCCEEDED, time.time()
                if record.started_at is not None:
                    seconds = record.ended_at - record.started_at
                    self.metadata.record_duration(self.run.pipeline_id, instance.id, seconds)
                self._store_result(instance, record)
                del self.attempts[instance.key]
                self.view.step_changed(label_of(instance.id, instance.ctx), SUCCEEDED)
                self._complete(instance, SUCCEEDED, record.reason)
                return
            why = found
        else:
            why = self.executor.describe_exit(exit)
        why = secrets.mask_text(why, attempts.masks)
        if attempts.attempt <= step.retries:
            self._seq += 1
            due = time.monotonic() + step.retry_delay
            heapq.heappush(self.retries, (due, self._seq, instance))
            label = label_of(instance.id, instance.ctx)
            self.view.step_changed(label, "retrying", f"{why}; attempt {attempts.attempt + 1}")
            return
        self._fail(instance, record, why)

    def _remove_staging(self, instance: Instance) -> None:
        """What an ended attempt left half-written in its output folder (its processes are gone,
        so nothing writes there now)."""
        if store.is_remote(self.run.artifact_root):
            return
        folder = store.output_uri(
            self.run.artifact_root, self.run.run_id, instance.id, list(instance.ctx), ""
        )
        store.remove_staging(store.local_path(folder), recursive=False)

    def _fail(self, instance: Instance, record: StepRecord, why: str) -> None:
        record.status, record.reason, record.ended_at = FAILED, why, time.time()
        self.attempts.pop(instance.key, None)
        self._store_result(instance, record)
        self.view.step_changed(label_of(instance.id, instance.ctx), FAILED, why)
        self._complete(instance, FAILED, why)

    def _interrupt(self) -> None:
        for handle, instance in list(self.running.items()):
            self.executor.kill(handle)
            if not self.executor.wait([handle], 5.0):
                self.executor.kill(handle)  # a second time: without waiting for the step
                self.executor.wait([handle], 5.0)
            self._remove_staging(instance)
            record = self.attempts[instance.key].record
            record.status, record.reason, record.ended_at = FAILED, "interrupted", time.time()
            self.records[instance.key] = record
            self.metadata.save_step(record)
        self.running.clear()
        self.metadata.commit()

    def _result(self, status: str, duration: float) -> RunResult:
        """The run's result, with the output values the metadata store recorded."""
        position = {step_id: i for i, step_id in enumerate(self.plan.order)}
        values = self.metadata.recorded_values(self.run.run_id)
        records = sorted(
            (with_values(r, values) for r in self.records.values()),
            key=lambda r: (position.get(r.step_id, 0), parse_iteration(r.iteration)),
        )
        return RunResult(
            run_id=self.run.run_id,
            pipeline=self.run.pipeline_name,
            status=status,
            steps=[step_result(r) for r in records],
            errors=list(self.expansion.errors),
            duration=duration,
            params=dict(self.run.params),
        )
