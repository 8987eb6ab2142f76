"""Runs recorded by the local target, from Python: `pipec.runs.get(run_id)`, `latest(pipeline)`.

    import pipec.runs
    run = pipec.runs.latest("training")           # or latest(my_pipeline), get("2025...-ab12cd")
    run.status, run.params, run.duration
    for step in run.steps: print(step.label, step.status, step.duration)
    model = run.output("train")                   # loaded by the materializer that stored it
    scores = [run.output("evaluate_2", iteration=(i,)) for i in range(2)]

A `Run` is read from the project's metadata store (`.pipec/metadata.db`, found from `project`
or the current folder) when it is asked for; it does not change while you hold it (`refresh()`
reads it again). Outputs are loaded with the materializer recorded in their `meta.json`, as
the steps that read them do. The CLI (`pipec runs`, `pipec artifacts`) and the web view
(`pipec ui`) read runs through this module too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pipec import loader
from pipec.backends.runner.metadata import MetadataStore
from pipec.backends.runner.records import RunRecord, StepRecord, iteration_key
from pipec.backends.runner.results import (
    RunError,
    RunResult,
    StepResult,
    label_of,
    status_of,
    stored_result,
    why_failed,
)
from pipec.backends.runner.runs import open_metadata
from pipec.backends.runtime import store
from pipec.backends.runtime.context import LOG_PREFIX
from pipec.graph.diagram import StepState


class RunNotFound(RunError, LookupError):
    """No such run (or no run of that pipeline) in the project."""


@dataclass(frozen=True)
class Output:
    """One stored output of a step instance."""

    name: str
    uri: str
    type: str
    materializer: str
    hash: str
    value_json: str | None
    """The JSON text the store recorded (small JSON values only)."""

    @property
    def is_value(self) -> bool:
        """Whether it is a JSON value (usable in conditions, shown as is)."""
        return self.materializer == "json"

    def load(self) -> Any:
        """The Python object, read with the materializer that wrote it."""
        return store.read(self.uri)

    @property
    def exists(self) -> bool:
        """Whether its files are still in the artifact store."""
        return store.exists(self.uri)


@dataclass
class Step:
    """One step instance of a run (a step, or one iteration of it in a loop)."""

    id: str
    iteration: tuple[int, ...]
    name: str
    status: str
    reason: str
    attempts: int
    duration: float | None
    started_at: float | None
    ended_at: float | None
    cached_from: str | None
    log_path: str | None
    outputs: dict[str, Output]
    inputs: dict[str, list[str]]
    """Input name -> the output locations it read (lineage)."""
    why: str = ""
    """Why it did not succeed (for a failure, the exception its log ends with), or why it was
    not served from the cache."""

    @property
    def label(self) -> str:
        """`step` or `step[i]`."""
        return label_of(self.id, self.iteration)

    def log(self) -> str:
        """Its log as text ("" when it has none: it did not run in this run)."""
        if not self.log_path or not Path(self.log_path).is_file():
            return ""
        return Path(self.log_path).read_text(encoding="utf-8", errors="replace")

    def metrics(self) -> dict[str, float]:
        """The numbers the step logged with `pipec.context().log_metric` (each one's last value,
        across its attempts)."""
        return self._logged()[0]

    def metadata(self) -> dict[str, Any]:
        """What the step logged with `pipec.context().log_metadata` (a later key wins)."""
        return self._logged()[1]

    def _logged(self) -> tuple[dict[str, float], dict[str, Any]]:
        # The runtime writes them into the step's log, one `pipec: {JSON}` line each
        # (runtime/context.py); the log covers every attempt.
        metrics: dict[str, float] = {}
        metadata: dict[str, Any] = {}
        for line in self.log().splitlines():
            if not line.startswith(LOG_PREFIX + "{"):
                continue
            try:
                entry = json.loads(line[len(LOG_PREFIX) :])
            except ValueError:
                continue  # a line cut short by a kill, or the step's own text
            if not isinstance(entry, dict):
                continue
            value = entry.get("value")
            if "metric" in entry and isinstance(value, int | float):
                metrics[str(entry["metric"])] = value
            elif isinstance(entry.get("metadata"), dict):
                metadata.update(entry["metadata"])
        return metrics, metadata


class Run:
    """A recorded run; see the module docstring. Its steps are read when first asked for."""

    def __init__(self, metadata: MetadataStore, record: RunRecord) -> None:
        self._metadata = metadata
        self._set(record)

    def _set(self, record: RunRecord) -> None:
        self.record = record
        self.id = record.run_id
        self.pipeline = record.pipeline_name
        self.pipeline_id = record.pipeline_id
        self.status = status_of(record)
        self.params: dict[str, Any] = dict(record.params)
        self.started_at = record.started_at
        self.ended_at = record.ended_at
        self.artifact_root = record.artifact_root
        self.project_root = Path(record.project_root)
        self.__dict__.pop("result", None)
        self.__dict__.pop("steps", None)

    @cached_property
    def result(self) -> RunResult:
        """The run as the CLI's summary shows it."""
        return stored_result(self._metadata, self.id)

    @cached_property
    def steps(self) -> list[Step]:
        """Every step instance, in the pipeline's order (loop iterations in order)."""
        records = {(r.step_id, r.iteration): r for r in self._metadata.steps_of(self.id)}
        return [
            _step(s, records[(s.step_id, iteration_key(s.iteration))]) for s in self.result.steps
        ]

    def refresh(self) -> Run:
        """Read the run again (while it runs, its steps move on)."""
        record = self._metadata.get_run(self.id)
        if record is None:
            raise RunNotFound(f"run {self.id} is no longer recorded (deleted?)")
        self._set(record)
        return self

    @property
    def duration(self) -> float | None:
        """Seconds it ran (a resumed run: its running time, not the pause before the resume);
        None until it ended."""
        if self.ended_at is None:
            return None
        return self.record.running_time(self.ended_at)

    @property
    def elapsed(self) -> float:
        """Seconds it has been running so far (its duration once it ended)."""
        return self.record.running_time(time.time())

    def step(self, step: str, iteration: Sequence[int] = ()) -> Step:
        """One step instance by id (`train`, or `train[2]` / iteration=(2,) in a loop)."""
        step_id, iteration = _parse_label(step, iteration)
        matches = [s for s in self.steps if s.id == step_id]
        for found in matches:
            if found.iteration == iteration:
                return found
        if matches:
            have = ", ".join(s.label for s in matches[:10])
            raise KeyError(f"step {label_of(step_id, iteration)} is not in run {self.id}: {have}")
        known = ", ".join(sorted({s.id for s in self.steps}))
        raise KeyError(f"no step {step_id!r} in run {self.id}; steps: {known}")

    def iterations(self, step_id: str) -> list[Step]:
        """Every instance of a step (all the iterations of a step in a loop)."""
        return [s for s in self.steps if s.id == step_id]

    def output(self, step: str, name: str = "output", iteration: Sequence[int] = ()) -> Any:
        """A step's output, loaded as the steps reading it get it."""
        found = self.step(step, iteration)
        if name not in found.outputs:
            have = ", ".join(sorted(found.outputs)) or "none recorded"
            raise KeyError(f"step {found.label} of run {self.id} has no output {name!r} ({have})")
        return found.outputs[name].load()

    def states(self) -> dict[str, StepState]:
        """Step id -> its state over all its instances (what `runs show --graph` colours)."""
        by_step: dict[str, list[Step]] = {}
        for step in self.steps:
            by_step.setdefault(step.id, []).append(step)
        return {step_id: _state(steps) for step_id, steps in by_step.items()}

    def picture(self, fmt: str = "mermaid") -> bytes:
        """The pipeline's picture coloured by this run's statuses (see `pipec.graph`)."""
        from pipec.backends.runner import plan as plans
        from pipec.graph import outline, picture

        try:
            plan = plans.load(self.record.plan)
        except plans.PlanVersionError as exc:
            raise RunError(
                f"run {self.id} was recorded by another version of pipec ({exc}): it cannot "
                "be drawn"
            ) from None
        return picture(outline.of_plan(plan), fmt, self.states())

    def to_json(self) -> dict[str, Any]:
        """What `pipec runs show --json` prints."""
        return self.result.to_json()

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.pipeline} {self.status}>"


def _parse_label(step: str, iteration: Sequence[int]) -> tuple[str, tuple[int, ...]]:
    step_id, bracket, rest = step.partition("[")
    if bracket and rest.endswith("]"):
        inside = rest[:-1]
        try:
            return step_id, tuple(int(part) for part in inside.split(".")) if inside else ()
        except ValueError:
            raise KeyError(f"{step!r}: write a loop iteration as step[2] or step[2.0]") from None
    return step, tuple(iteration)


def _step(result: StepResult, record: StepRecord) -> Step:
    outputs = {
        name: Output(name, a.uri, a.type, a.materializer, a.hash, a.value_json)
        for name, a in sorted(record.artifacts.items())
    }
    why = why_failed(result) if result.status == "failed" else result.reason
    return Step(
        id=result.step_id,
        iteration=result.iteration,
        name=result.name,
        status=result.status,
        reason=result.reason,
        attempts=result.attempts,
        duration=result.duration,
        started_at=record.started_at,
        ended_at=record.ended_at,
        cached_from=result.cached_from,
        log_path=result.log_path,
        outputs=outputs,
        inputs=dict(record.inputs),
        why=why,
    )


_WORST = ("failed", "interrupted", "running", "retrying", "upstream_failed", "pending")


def _state(steps: list[Step]) -> StepState:
    """One step's state over its instances: the most telling status, and a detail line."""
    statuses = [s.status for s in steps]
    status = next((w for w in _WORST if w in statuses), statuses[0])
    if len(steps) == 1:
        step = steps[0]
        if step.status == "cached":
            return StepState(status, f"from {step.cached_from}" if step.cached_from else "")
        return StepState(status, "" if step.duration is None else f"{step.duration:.2f}s")
    counts: dict[str, int] = {}
    for name in statuses:
        counts[name] = counts.get(name, 0) + 1
    tally = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
    total = sum(s.duration or 0.0 for s in steps if s.status != "cached")
    return StepState(status, f"{len(steps)} runs: {tally}" + (f", {total:.2f}s" if total else ""))


# -------------------------------------------------------------------------------- lookups


def _store(project: str | Path | None) -> MetadataStore:
    root = loader.project_root(Path(project) if project is not None else Path.cwd())
    return open_metadata(root)


def get(run_id: str, project: str | Path | None = None) -> Run:
    """The run `run_id` of the project (the one holding `project`, else the current folder)."""
    metadata = _store(project)
    record = metadata.get_run(run_id)
    if record is None:
        raise RunNotFound(f"no run {run_id!r} in {metadata.path}")
    return Run(metadata, record)


def latest(
    pipeline: Any, project: str | Path | None = None, status: str | None = None
) -> Run:
    """The newest run of `pipeline` (its name or id, or the `@pipeline` function itself),
    optionally the newest with `status` (e.g. "succeeded")."""
    name = pipeline if isinstance(pipeline, str) else getattr(pipeline, "name", None)
    if not isinstance(name, str):
        raise TypeError(f"latest() takes a pipeline name or a @pipeline, not {pipeline!r}")
    for run in find(name, status=status, limit=None, project=project):
        return run
    which = f" with status {status}" if status else ""
    raise RunNotFound(f"no run of pipeline {name!r}{which} in this project")


def find(
    pipeline: str | None = None,
    status: str | None = None,
    limit: int | None = 20,
    project: str | Path | None = None,
) -> Iterator[Run]:
    """Runs newest first, of one pipeline (name or id) and/or with one status (as shown now:
    a run whose runner was killed is `interrupted`)."""
    metadata = _store(project)
    stored = ("running",) if status == "interrupted" else ()
    shown = 0
    for record in metadata.find_runs(pipeline, (status, *stored) if status else ()):
        run = Run(metadata, record)
        if status is not None and run.status != status:
            continue
        yield run
        shown += 1
        if limit is not None and shown >= limit:
            return
