"""The local runner: execute a local plan on this machine — parallel, cached, resumable.

`run_pipeline` (a validated IR pipeline) and `run_plan` (a plan dict, e.g. plan.json) start a run;
`resume_run` continues one that crashed or was interrupted. The runner is one thread: it asks the
expansion (`local_graph`) which step instances are ready, resolves their inputs to runtime SOURCEs,
reuses cached or already-finished results, starts the rest as forked step processes
(`local_exec`) within the parallelism and the machine's cpu/memory, longest remaining path first,
and records everything in the metadata store (`metadata`). Run layout under the project:

    .pipec/metadata.db                      runs, steps, artifacts, lineage
    .pipec/<run_id>/<step_id>[/<i>...]/...  artifacts (default artifact root; see `store`)
    .pipec/logs/<run_id>/<step_id>[.<i>...].log
"""

from __future__ import annotations

import heapq
import json
import os
import secrets
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipec.backends import runtime as _runtime
from pipec.backends.local import fork as local_exec
from pipec.backends.params import resolve_params
from pipec.backends.runner import expansion as local_graph
from pipec.backends.runner import plan as local_plan
from pipec.backends.runner import secrets as local_secrets
from pipec.backends.runner.cache import cache_key, digest, explain_miss, key_parts
from pipec.backends.runner.capacity import Capacity, request_of
from pipec.backends.runner.expansion import CACHED, FAILED, OK, SUCCEEDED, Expansion, Instance
from pipec.backends.runner.metadata import (
    MetadataStore,
    RunRecord,
    StepRecord,
    artifact_from_meta,
    iteration_key,
    parse_iteration,
)
from pipec.backends.runner.results import RunError, RunResult, label_of, step_result
from pipec.backends.runner.view import View, make_view
from pipec.backends.runtime import store
from pipec.backends.settings import TargetSettings
from pipec.ir.code import code_hash
from pipec.ir.model import Pipeline

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


def run_pipeline(
    pipeline: Pipeline,
    settings: TargetSettings,
    params: Mapping[str, Any] | None = None,
    *,
    root: Path | None = None,
    no_cache: bool = False,
    parallelism: int | None = None,
    view: str = "auto",
) -> RunResult:
    """Run a validated pipeline on this machine and return what happened."""
    plan = local_plan.build(pipeline, settings)
    project_root = (root or Path.cwd()).resolve()
    return run_plan(
        plan, params or {}, project_root, no_cache=no_cache, parallelism=parallelism, view=view
    )


def run_plan(
    plan: Mapping[str, Any],
    params: Mapping[str, Any],
    project_root: Path,
    *,
    no_cache: bool = False,
    parallelism: int | None = None,
    view: str = "auto",
) -> RunResult:
    """Run a local plan (see `local_plan`) with parameter values (defaults filled in here)."""
    values = resolve_params(plan["params"], params)
    settings = plan.get("settings", {})
    artifact_root = _artifact_root(settings.get("artifact_root"), project_root)
    metadata = open_metadata(project_root)
    run = RunRecord(
        run_id=new_run_id(),
        pipeline_id=plan["pipeline"]["id"],
        pipeline_name=plan["pipeline"]["name"],
        status="running",
        started_at=time.time(),
        ended_at=None,
        params=values,
        plan=dict(plan),
        project_root=str(project_root),
        artifact_root=artifact_root,
        runner_pid=os.getpid(),
        runner_host=socket.gethostname(),
    )
    metadata.create_run(run)
    runner = Runner(run, metadata, no_cache=no_cache, parallelism=parallelism, view=view)
    return runner.execute()


def resume_run(
    run_id: str,
    project_root: Path,
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
    _check_code_unchanged(run, project_root)
    previous = {(r.step_id, r.iteration): r for r in metadata.steps_of(run_id)}
    metadata.set_run_status(run_id, "running", ended=False, runner_pid=os.getpid())
    runner = Runner(run, metadata, parallelism=parallelism, view=view, previous=previous)
    return runner.execute()


def _check_code_unchanged(run: RunRecord, project_root: Path) -> None:
    """Refuse to resume when a step's code changed since the run started: the finished steps ran
    the old code, and the rest would run the new code under the old code's cache key."""
    changed = []
    for node in run.plan.get("nodes", {}).values():
        comp = node.get("component")
        if not comp:
            continue
        target = f"{comp['module']}:{comp['function']}"
        try:
            func = _runtime.load_function(target, str(project_root))
            now = code_hash(getattr(func, "func", func), comp["module"], comp["function"])
        except Exception:  # gone, renamed or broken: it changed all the same
            now = None
        if now != comp["code_hash"]:
            changed.append(target)
    if changed:
        raise RunError(
            f"the code of {', '.join(sorted(set(changed)))} changed since run {run.run_id} "
            "started; resuming would mix two versions. Start a new run (unchanged steps come from "
            "the cache)"
        )


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


@dataclass
class _Prepared:
    """A ready step instance with its inputs resolved, waiting for a slot."""

    argv: list[str]
    record: StepRecord
    request: tuple[float, int]
    attempt: int = 0


class Runner:
    """Executes one run; see the module docstring."""

    def __init__(
        self,
        run: RunRecord,
        metadata: MetadataStore,
        *,
        no_cache: bool = False,
        parallelism: int | None = None,
        view: str = "auto",
        previous: Mapping[tuple[str, str], StepRecord] | None = None,
    ) -> None:
        self.run = run
        self.plan = run.plan
        self.nodes: Mapping[str, Mapping[str, Any]] = self.plan["nodes"]
        self.metadata = metadata
        self.no_cache = no_cache
        self.previous = dict(previous or {})
        self.project_root = Path(run.project_root)
        self.settings: Mapping[str, Any] = self.plan.get("settings", {})
        self.capacity = Capacity.of_machine(
            parallelism or self.settings.get("parallelism"),
            self.settings.get("cpus"),
            self.settings.get("memory"),
        )
        self.expansion = Expansion(self.plan, self._value_of)
        self.outputs: dict[local_graph.Key, dict[str, Any]] = {}
        self.records: dict[local_graph.Key, StepRecord] = {}
        self.ready: list[tuple[float, int, Instance]] = []
        self.prepared: dict[local_graph.Key, _Prepared] = {}
        self.retries: list[tuple[float, int, Instance]] = []
        self.running: dict[int, tuple[Instance, local_exec.StepProcess]] = {}
        self.priority = self._priorities()
        self._seq = 0
        self._masks: dict[int, list[str]] = {}
        static = [s for s in self.plan["order"] if not self.nodes[s]["loops"]]
        self.view: View = make_view(view, run.run_id, static)
        self._preload_modules()

    # ------------------------------------------------------------------------------ the loop

    def execute(self) -> RunResult:
        """Run to the end (or until interrupted) and return the result."""
        started = time.monotonic()
        status = "interrupted"
        try:
            self.expansion.start()
            self._collect_ready()
            while not self.expansion.finished:
                self._schedule()
                if self.expansion.finished:
                    break
                self.metadata.commit()
                self._wait()
            status = self._final_status()
        except KeyboardInterrupt:
            self._interrupt()
        finally:
            self.metadata.set_run_status(self.run.run_id, status, ended=True)
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
            prepared = self.prepared.get(instance.key) or self._prepare(instance)
            if prepared is None:
                continue  # settled without running (cached, resumed, or failed to prepare)
            if not self.capacity.fits(prepared.request, len(self.running)):
                blocked.append(entry)
                if len(self.running) >= self.capacity.parallelism:
                    break
                continue
            self._launch(instance, prepared)
        for entry in blocked:
            heapq.heappush(self.ready, entry)

    def _wait(self) -> None:
        processes = [process for _, process in self.running.values()]
        now = time.monotonic()
        wake = [now + 0.1] if self.running else [now + 3600.0]
        wake += [p.deadline for p in processes if p.deadline is not None]
        if self.retries:
            wake.append(self.retries[0][0])
        if not self.running and not self.retries:
            raise RuntimeError("local runner: nothing running and nothing ready (internal)")
        for process, code in local_exec.wait(processes, max(0.0, min(wake) - now)):
            self._finished(process, code)
        now = time.monotonic()
        for _, process in list(self.running.values()):
            if process.deadline is not None and now >= process.deadline:
                process.timed_out = True
                local_exec.kill_tree(process)
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
            name=self.nodes[step_id]["name"],
            status="pending",
        )

    def _complete(self, instance: Instance, status: str, reason: str = "") -> None:
        self.expansion.complete(instance, status, reason)
        self._collect_ready()

    def _prepare(self, instance: Instance) -> _Prepared | None:
        node = self.nodes[instance.id]
        record = self._new_record(instance.id, instance.ctx)
        try:
            sources, params, hashes, lineage = self._resolve_inputs(node, instance)
        except (local_graph.ExpansionError, FileNotFoundError, KeyError) as exc:
            self._fail(instance, record, f"inputs could not be resolved: {exc}")
            return None
        record.inputs = lineage
        image = node.get("image") or self.settings.get("image")
        record.cache_parts = key_parts(
            node["component"]["code_hash"], image, params, hashes, node.get("env")
        )
        record.cache_key = cache_key(record.cache_parts)
        if self._reuse_previous(instance, record) or self._reuse_cached(instance, node, record):
            return None
        argv = [self._render(arg, instance, sources) for arg in node["command"][3:]]
        prepared = _Prepared(argv, record, request_of(node["resources"], self.capacity))
        self.prepared[instance.key] = prepared
        return prepared

    def _resolve_inputs(
        self, node: Mapping[str, Any], instance: Instance
    ) -> tuple[dict[str, str], dict[str, Any], dict[str, str], dict[str, list[str]]]:
        sources: dict[str, str] = {}
        params: dict[str, Any] = {}
        hashes: dict[str, str] = {}
        lineage: dict[str, list[str]] = {}
        for name, binding in node["inputs"].items():
            kind = binding["kind"]
            if kind == "output":
                key = self.expansion.producer_key(binding["step"], instance)
                artifact = self.outputs[key][binding["output"]]
                sources[name] = f"artifact:{artifact.uri}"
                hashes[name] = artifact.hash
                lineage[name] = [artifact.uri]
            elif kind == "collect":
                keys = self.expansion.collect_keys(binding, instance)
                artifacts = [self.outputs[key][binding["output"]] for key in keys]
                sources[name] = "artifacts:" + json.dumps([a.uri for a in artifacts])
                hashes[name] = digest([a.hash for a in artifacts])
                lineage[name] = [a.uri for a in artifacts]
            else:
                value = self._value_of(binding, instance)
                params[name] = value
                sources[name] = "value:" + json.dumps(value, sort_keys=True)
        return sources, params, hashes, lineage

    def _render(self, template: str, instance: Instance, sources: Mapping[str, str]) -> str:
        iteration = "".join(f"/{i}" for i in instance.ctx)

        def lookup(name: str) -> str:
            if name.startswith("input:"):
                return sources[name.removeprefix("input:")]
            return {
                "python": sys.executable,
                "project_root": str(self.project_root),
                "artifact_root": self.run.artifact_root,
                "run_id": self.run.run_id,
                "iteration": iteration,
            }[name]

        return local_plan.render(template, lookup)

    def _reuse_previous(self, instance: Instance, record: StepRecord) -> bool:
        """On resume: a step instance that already finished keeps its result."""
        earlier = self.previous.get((instance.id, record.iteration))
        if earlier is None or earlier.status not in OK:
            return False
        if not all(store.exists(a.uri) for a in earlier.artifacts.values()):
            return False
        self.records[instance.key] = earlier
        self.outputs[instance.key] = dict(earlier.artifacts)
        self.view.step_changed(label_of(instance.id, instance.ctx), earlier.status, "kept")
        self._complete(instance, earlier.status, earlier.reason)
        return True

    def _reuse_cached(
        self, instance: Instance, node: Mapping[str, Any], record: StepRecord
    ) -> bool:
        assert record.cache_key is not None and record.cache_parts is not None
        if not node["cache"]:
            record.reason = "not cached: cache=False on this step"
            return False
        if self.no_cache:
            record.reason = "not cached: --no-cache"
            return False
        hit = self.metadata.find_cached(instance.id, record.cache_key)
        if hit is not None and all(store.exists(a.uri) for a in hit.artifacts.values()):
            record.status, record.cached_from = CACHED, hit.cached_from or hit.run_id
            record.reason = f"cached from run {record.cached_from}"
            record.artifacts = dict(hit.artifacts)
            record.started_at = record.ended_at = time.time()
            self._store_result(instance, record)
            self.view.step_changed(label_of(instance.id, instance.ctx), CACHED)
            self._complete(instance, CACHED, record.reason)
            return True
        earlier = self.metadata.previous_execution(
            self.run.pipeline_id, instance.id, record.iteration, self.run.run_id
        )
        why = explain_miss(record.cache_parts, earlier.cache_parts if earlier else None)
        record.reason = f"not cached: {why}"
        return False

    def _store_result(self, instance: Instance, record: StepRecord) -> None:
        self.records[instance.key] = record
        self.outputs[instance.key] = dict(record.artifacts)
        self.metadata.save_step(record)

    # --------------------------------------------------------------------------- processes

    def _launch(self, instance: Instance, prepared: _Prepared) -> None:
        node = self.nodes[instance.id]
        record = prepared.record
        prepared.attempt += 1
        record.attempts = prepared.attempt
        record.status = "running"
        record.started_at = time.time()
        name = record.step_id + (f".{record.iteration}" if record.iteration else "")
        log_path = state_dir(self.project_root) / "logs" / self.run.run_id / f"{name}.log"
        record.log_path = str(log_path)
        try:
            secret_values = local_secrets.resolve(node["secrets"], self.project_root)
        except local_secrets.MissingSecret as exc:
            self._fail(instance, record, str(exc))
            return
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if prepared.attempt > 1:
            with log_path.open("a", encoding="utf-8") as log:
                log.write(f"--- pipec: attempt {prepared.attempt} ---\n")
        env = {
            **node["env"],
            **secret_values,
            "PIPEC_RUN_ID": self.run.run_id,
            "PIPEC_STEP_ID": instance.id,
            "PIPEC_ITERATION": record.iteration,
            "PIPEC_ATTEMPT": str(prepared.attempt),
        }
        launch = local_exec.Launch(
            argv=prepared.argv,
            env=env,
            log_path=log_path,
            cwd=self.project_root,
            mask=list(secret_values.values()),
        )
        process = local_exec.start(launch, node["timeout"])
        self._masks[process.pid] = list(secret_values.values())
        self.capacity.take(prepared.request)
        self.running[process.pid] = (instance, process)
        self.metadata.save_step(record)
        detail = f"attempt {prepared.attempt}" if prepared.attempt > 1 else ""
        self.view.step_changed(label_of(instance.id, instance.ctx), "running", detail)

    def _finished(self, process: local_exec.StepProcess, code: int) -> None:
        instance, _ = self.running.pop(process.pid)
        local_exec.kill_tree(process)  # whatever the step left behind goes with it
        prepared = self.prepared[instance.key]
        self.capacity.release(prepared.request)
        record = prepared.record
        node = self.nodes[instance.id]
        masks = self._masks.pop(process.pid, [])
        if code == 0:
            problem = self._collect_outputs(instance, record)
            if problem is None:
                record.status, record.ended_at = SUCCEEDED, time.time()
                self._store_result(instance, record)
                del self.prepared[instance.key]
                self.view.step_changed(label_of(instance.id, instance.ctx), SUCCEEDED)
                self._complete(instance, SUCCEEDED, record.reason)
                return
            why = problem
        elif process.timed_out:
            why = f"timed out after {node['timeout']:g}s (process group killed)"
        else:
            why = local_exec.describe_exit(code)
        why = local_exec.mask_text(why, masks)
        if prepared.attempt <= node["retries"]:
            self._seq += 1
            due = time.monotonic() + float(node["retry_delay"])
            heapq.heappush(self.retries, (due, self._seq, instance))
            label = label_of(instance.id, instance.ctx)
            self.view.step_changed(label, "retrying", f"{why}; attempt {prepared.attempt + 1}")
            return
        self._fail(instance, record, why)

    def _collect_outputs(self, instance: Instance, record: StepRecord) -> str | None:
        """Read the meta.json of every declared output; a missing one fails the step."""
        node = self.nodes[instance.id]
        iteration = list(instance.ctx)
        for output in node["outputs"]:
            uri = store.output_uri(
                self.run.artifact_root, self.run.run_id, instance.id, iteration, output
            )
            meta = store.read_meta(uri)
            if meta is None:
                return f"output {output!r} was not written to {uri}"
            value_json = None
            if meta.get("materializer") == "json" and not store.is_remote(uri):
                value_json = (store.local_path(uri) / "value.json").read_text(encoding="utf-8")
            elif meta.get("materializer") == "json":
                value_json = json.dumps(store.read(uri))
            record.artifacts[output] = artifact_from_meta(output, uri, meta, value_json)
        return None

    def _fail(self, instance: Instance, record: StepRecord, why: str) -> None:
        record.status, record.reason, record.ended_at = FAILED, why, time.time()
        self.prepared.pop(instance.key, None)
        self._store_result(instance, record)
        self.view.step_changed(label_of(instance.id, instance.ctx), FAILED, why)
        self._complete(instance, FAILED, why)

    def _interrupt(self) -> None:
        for instance, process in list(self.running.values()):
            local_exec.kill_tree(process)
            local_exec.wait([process], 5.0)
            record = self.prepared[instance.key].record
            record.status, record.reason, record.ended_at = FAILED, "interrupted", time.time()
            self.records[instance.key] = record
            self.metadata.save_step(record)
        self.running.clear()
        self.metadata.commit()

    # ------------------------------------------------------------------------------ values

    def _value_of(self, binding: Mapping[str, Any], instance: Instance) -> Any:
        kind = binding["kind"]
        if kind == "const":
            return binding["value"]
        if kind == "param":
            return self.run.params[binding["param"]]
        if kind == "item":
            return self.expansion.loop_item(binding["loop"], instance)
        if kind == "output":
            key = self.expansion.producer_key(binding["step"], instance)
            return self._artifact_value(self.outputs[key][binding["output"]])
        if kind == "collect":
            keys = self.expansion.collect_keys(binding, instance)
            return [self._artifact_value(self.outputs[k][binding["output"]]) for k in keys]
        raise local_graph.ExpansionError(f"unknown binding kind {kind!r}")

    def _artifact_value(self, artifact: Any) -> Any:
        if artifact.is_value:
            return artifact.value()
        found, value = store.read_value(artifact.uri)
        if not found:
            raise local_graph.ExpansionError(
                f"{artifact.uri} holds a {artifact.type}, not a JSON value"
            )
        return value

    # ----------------------------------------------------------------------------- helpers

    def _priorities(self) -> dict[str, float]:
        """Longest remaining path per step, weighted by durations measured in earlier runs."""
        measured = self.metadata.mean_durations(self.run.pipeline_id)
        fallback = sum(measured.values()) / len(measured) if measured else 1.0
        order: list[str] = self.plan["order"]
        dependents: dict[str, list[str]] = {s: [] for s in order}
        for step_id in order:
            for producer in local_plan.step_dependencies(self.nodes, step_id):
                dependents[producer].append(step_id)
        longest: dict[str, float] = {}
        for step_id in reversed(order):
            rest = max((longest[c] for c in dependents[step_id]), default=0.0)
            longest[step_id] = measured.get(step_id, fallback) + rest
        return longest

    def _preload_modules(self) -> None:
        """Import the components' modules before forking, so each step starts warm. A module
        that fails to import here fails in its step, with the traceback in the step's log."""
        import importlib

        root = str(self.project_root)
        if root not in sys.path:
            sys.path.insert(0, root)
        modules = {self.nodes[s]["component"]["module"] for s in self.plan["order"]}
        for module in sorted(modules):
            try:
                importlib.import_module(module)
            except Exception:
                continue

    def _result(self, status: str, duration: float) -> RunResult:
        position = {step_id: i for i, step_id in enumerate(self.plan["order"])}
        records = sorted(
            self.records.values(),
            key=lambda r: (position.get(r.step_id, 0), parse_iteration(r.iteration)),
        )
        steps = [step_result(r) for r in records]
        return RunResult(
            run_id=self.run.run_id,
            pipeline=self.run.pipeline_name,
            status=status,
            steps=steps,
            errors=list(self.expansion.errors),
            duration=duration,
        )
