"""The Kubernetes-Job executor: each step attempt the shared scheduler starts is one Job.

`start` renders the attempt's Job with `pods.step_job` (the function that also wrote the
compiled templates) and creates it; `wait` sleeps on a live copy of the run's Jobs and Pods
(`watching`) until one ends, and reports it the way the scheduler expects:

* Job `Complete` -> exit 0; `Failed` -> the step container's exit code, or `timed_out_after`
  when the pod ran past its `activeDeadlineSeconds` (the cluster stops it, so a timeout holds
  even when the driver is gone);
* a pod that cannot start (`CreateContainerConfigError` for a missing Secret key,
  `ErrImagePull`, `ImagePullBackOff`, `InvalidImageName`, ...) fails the attempt with the
  kubelet's message instead of waiting forever;
* a Job the API refused (`create` failed) fails the attempt with the API's message.

Each ended attempt's pod log (masked) is appended to the attempt's log file. A restarted driver
**adopts** its predecessor's Jobs: the first start of a step instance takes over that instance's
newest Job that is still running or has succeeded, so a step that was running (or had finished
but was not yet recorded) is neither run twice nor killed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipec.backends.kubernetes import names, pods
from pipec.backends.kubernetes.client import (
    JSON,
    ClusterError,
    api_message,
    condition,
    finished,
    read,
    require,
    status_of,
)
from pipec.backends.kubernetes.settings import KubernetesTargetSettings
from pipec.backends.kubernetes.watching import ObjectCache, settle
from pipec.backends.runner.executor import Exit, Launch
from pipec.backends.runner.plan import Plan
from pipec.backends.runner.secrets import mask_text
from pipec.backends.runtime import invocation

CANNOT_START = frozenset(
    {
        "CreateContainerConfigError",
        "CreateContainerError",
        "ErrImagePull",
        "ErrImageNeverPull",
        "ImagePullBackOff",
        "InvalidImageName",
    }
)
"""Waiting reasons that mean the step's container will not start without someone acting."""


@dataclass(frozen=True)
class JobExit(Exit):
    """An attempt's end with the cluster's words for it."""

    reason: str = ""


@dataclass(eq=False)
class StepJob:
    """One attempt: the Job's name and what the executor knows about it."""

    name: str
    launch: Launch
    ended: JobExit | None = None
    adopted: bool = False
    stopped: bool = False


@dataclass
class _Known:
    """The Jobs of one step instance this run already has (from an earlier driver, or made
    here), by counter."""

    jobs: dict[int, str] = field(default_factory=dict)
    started: bool = False


class JobExecutor:
    """Runs step attempts as Jobs in `settings.namespace` (see the module docstring)."""

    def __init__(
        self, api: Any, settings: KubernetesTargetSettings, pipeline_id: str, run_id: str
    ) -> None:
        kubernetes = require()
        self.batch = kubernetes.client.BatchV1Api(api)
        self.core = kubernetes.client.CoreV1Api(api)
        self.settings = settings
        self.namespace = settings.namespace
        self.pipeline_id = pipeline_id
        self.run_id = run_id
        self.changed = threading.Condition()
        selector = f"{names.RUN_LABEL}={run_id},app.kubernetes.io/component=step"
        self.jobs = ObjectCache(
            "jobs", self.batch.list_namespaced_job, self.namespace, selector, self.changed
        )
        self.pods = ObjectCache(
            "pods", self.core.list_namespaced_pod, self.namespace, selector, self.changed
        )
        self.known: dict[tuple[str, str], _Known] = {}

    # ---------------------------------------------------------------------- the protocol

    def prepare(self, plan: Plan, project_root: Path) -> None:
        """Start following the run's Jobs and Pods; note the Jobs an earlier driver made."""
        self.jobs.start()
        self.pods.start()
        settle([self.jobs, self.pods], 30.0)
        for cache in (self.jobs, self.pods):
            if not cache.listed.is_set():
                raise ClusterError(
                    f"cannot list the run's {cache.kind} in namespace {self.namespace}: "
                    f"{cache.error or 'no answer'}"
                )
        with self.changed:
            existing = list(self.jobs.items.values())
        for job in existing:
            labels = job["metadata"].get("labels") or {}
            annotations = job["metadata"].get("annotations") or {}
            key = (labels.get(names.STEP_LABEL, ""), labels.get(names.ITERATION_LABEL, ""))
            with contextlib.suppress(ValueError):
                counter = int(annotations.get(names.JOB_COUNTER_ANNOTATION, ""))
                self.known.setdefault(key, _Known()).jobs[counter] = job["metadata"]["name"]

    def start(self, launch: Launch) -> StepJob:
        """Create the attempt's Job (or adopt a predecessor's); return at once."""
        iteration = launch.env.get("PIPEC_ITERATION", "")
        known = self.known.setdefault((launch.step.id, iteration), _Known())
        if not known.started:
            known.started = True
            adopted = self._adoptable(known)
            if adopted is not None:
                _log(launch, f"pipec kubernetes: adopted job {adopted} of an earlier driver")
                return StepJob(adopted, launch, adopted=True)
        counter = max(known.jobs, default=0) + 1
        indices = [int(i) for i in iteration.split(".")] if iteration else []
        name = names.step_job_name(self.run_id, launch.step.id, indices, counter)
        known.jobs[counter] = name
        handle = StepJob(name, launch)
        body = self.render(launch, name, iteration, counter)
        _log(launch, f"pipec kubernetes: job {name} (namespace {self.namespace})")
        try:
            self.batch.create_namespaced_job(self.namespace, body, _preload_content=False)
        except Exception as exc:
            if status_of(exc) == 409:  # made by an earlier try of this very request: follow it
                return handle
            handle.ended = JobExit(1, reason=f"the API refused job {name}: {api_message(exc)}")
        return handle

    def render(self, launch: Launch, name: str, iteration: str, counter: int) -> JSON:
        """The Job of one attempt: `pods.step_job` with the run's values."""
        argv = invocation.parse(launch.argv)
        argv = replace(argv, code_root=self.settings.code_root)
        image = launch.image or self.settings.image
        assert image is not None  # the backend requires a default image
        return pods.step_job(
            launch.step,
            self.pipeline_id,
            self.settings,
            name=name,
            run_id=self.run_id,
            iteration=iteration,
            counter=str(counter),
            argv=[str(a) for a in argv.argv()],
            env=dict(launch.env),
            image=image,
        )

    def wait(self, handles: Sequence[StepJob], timeout: float) -> list[tuple[StepJob, Exit]]:
        """Sleep until one of `handles` ended (or `timeout`); return those that did, with
        their pod logs appended to their log files."""
        end = time.monotonic() + max(0.0, timeout)
        with self.changed:
            while True:
                done = [(h, e) for h in handles if (e := self._ended(h)) is not None]
                left = end - time.monotonic()
                if done or left <= 0:
                    break
                self.changed.wait(left)
        for handle, _ in done:
            self._save_logs(handle)
        return [(h, e) for h, e in done]

    def kill(self, handle: StepJob) -> None:
        """Delete the Job (and its pods) unless it has already finished: finished Jobs stay for
        `kubectl logs` until `ttlSecondsAfterFinished`."""
        with self.changed:
            job = self.jobs.items.get(handle.name)
            done = job is not None and finished(job) is not None
        if done or handle.stopped:
            return
        handle.stopped = True
        with contextlib.suppress(Exception):
            self.batch.delete_namespaced_job(
                handle.name,
                self.namespace,
                propagation_policy="Background",
                _preload_content=False,
            )

    def describe_exit(self, exit: Exit) -> str:
        """Words for a failed attempt."""
        if exit.timed_out_after is not None:
            return (
                f"timed out after {exit.timed_out_after:g}s (the pod's activeDeadlineSeconds; "
                "the cluster stopped it)"
            )
        if isinstance(exit, JobExit) and exit.reason:
            return exit.reason
        return f"exit code {exit.code}"

    def close(self) -> None:
        """Stop following the run."""
        self.jobs.stop()
        self.pods.stop()

    # -------------------------------------------------------------------------- reading

    def _adoptable(self, known: _Known) -> str | None:
        with self.changed:
            for counter in sorted(known.jobs, reverse=True):
                job = self.jobs.items.get(known.jobs[counter])
                if job is not None and finished(job) != "Failed":
                    return known.jobs[counter]
        return None

    def _pods_of(self, job_name: str) -> list[JSON]:
        found = [
            p
            for p in self.pods.items.values()
            if (p["metadata"].get("labels") or {}).get(names.JOB_NAME_LABEL) == job_name
            or (p["metadata"].get("labels") or {}).get("job-name") == job_name
        ]
        return sorted(found, key=lambda p: str(p["metadata"].get("creationTimestamp", "")))

    def _ended(self, handle: StepJob) -> JobExit | None:
        """How the attempt ended, or None while it runs (called with the lock held)."""
        if handle.ended is not None:
            return handle.ended
        job = self.jobs.items.get(handle.name)
        if job is None:
            if handle.name in self.jobs.deleted:
                handle.ended = JobExit(-9, reason=f"job {handle.name} was deleted")
            return handle.ended
        state = finished(job)
        pods_of = self._pods_of(handle.name)
        if state == "Complete":
            handle.ended = JobExit(0)
        elif state == "Failed":
            failed = condition(job, "Failed") or {}
            if failed.get("reason") != "DeadlineExceeded" and any(
                (p.get("status") or {}).get("phase") in ("Pending", "Running") for p in pods_of
            ):
                # Jobs and Pods come on two watches: the pod's end (its exit code, a deadline)
                # that made the Job fail has not arrived here yet. Its event wakes `wait`.
                return None
            handle.ended = self._failure(handle, job, pods_of)
        else:
            stuck = _cannot_start(pods_of[-1]) if pods_of else None
            if stuck is not None:
                handle.ended = JobExit(1, reason=stuck)
        return handle.ended

    def _failure(self, handle: StepJob, job: JSON, pods_of: list[JSON]) -> JobExit:
        failed = condition(job, "Failed") or {}
        last = pods_of[-1] if pods_of else {}
        status = last.get("status") or {}
        timed_out = status.get("reason") == "DeadlineExceeded" or (
            failed.get("reason") == "DeadlineExceeded"
        )
        if timed_out:
            return JobExit(-9, timed_out_after=handle.launch.timeout or 0.0)
        for state in status.get("containerStatuses") or []:
            ended = (state.get("state") or {}).get("terminated")
            if ended is not None:
                code = int(ended.get("exitCode", 1))
                why = ended.get("reason") or ""
                if why == "OOMKilled":
                    return JobExit(
                        code, reason="OOMKilled: the step used more memory than its limit"
                    )
                return JobExit(code)
        stuck = _cannot_start(last) if last else None
        message = stuck or " ".join(
            str(failed.get(k, "")) for k in ("reason", "message") if failed.get(k)
        )
        return JobExit(1, reason=message or f"job {handle.name} failed")

    def _save_logs(self, handle: StepJob) -> None:
        launch = handle.launch
        with self.changed:
            pods_of = self._pods_of(handle.name)
        parts: list[str] = []
        for pod in pods_of:
            name = pod["metadata"]["name"]
            try:
                response = self.core.read_namespaced_pod_log(
                    name,
                    self.namespace,
                    container=pods.STEP_CONTAINER,
                    _preload_content=False,
                    _request_timeout=60,
                )
                data = response.data
                parts.append(data.decode("utf-8", "replace") if isinstance(data, bytes) else data)
            except Exception as exc:
                parts.append(f"pipec kubernetes: no log of pod {name}: {api_message(exc)}\n")
        if handle.ended is not None and handle.ended.reason:
            parts.append(f"pipec kubernetes: {handle.ended.reason}\n")
        text = mask_text("".join(parts), launch.masks)
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        with launch.log_path.open("a", encoding="utf-8") as log:
            log.write(text if not text or text.endswith("\n") else text + "\n")


def _cannot_start(pod: JSON) -> str | None:
    """The kubelet's words when a pod's container cannot start (see CANNOT_START)."""
    for state in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (state.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in CANNOT_START:
            message = " ".join(str(waiting.get("message", "")).split())
            return f"{waiting['reason']}: {message}" if message else str(waiting["reason"])
    return None


def _log(launch: Launch, line: str) -> None:
    launch.log_path.parent.mkdir(parents=True, exist_ok=True)
    with launch.log_path.open("a", encoding="utf-8") as log:
        log.write(line + "\n")


__all__ = ["JobExecutor", "JobExit", "StepJob", "read"]
