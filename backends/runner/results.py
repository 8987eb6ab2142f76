"""What a local run produced, for people and programs: step and run results, their JSON form,
rebuilding them from the metadata store (`pipec runs show`), and log tails."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipec.backends.runner.expansion import SUCCEEDED
from pipec.backends.runner.metadata import MetadataStore
from pipec.backends.runner.plan import order_of
from pipec.backends.runner.records import StepRecord, iteration_key, parse_iteration
from pipec.backends.runtime import store

LOG_TAIL_LINES = 20
LOG_TAIL_BYTES = 64 * 1024
"""At most this much of the end of a log is read for a tail, however big the log is."""
LOG_LINE_CHARS = 2000
"""A longer line in a tail shows its start and its end, and says how much was cut."""
EXIT_INTERRUPTED = 130


class RunError(Exception):
    """The run cannot start (bad parameters, unknown run id, a run still in progress)."""


@dataclass
class StepResult:
    """One step instance of a finished run."""

    step_id: str
    iteration: tuple[int, ...]
    name: str
    status: str
    reason: str
    attempts: int
    duration: float | None
    outputs: dict[str, Any]
    artifacts: dict[str, str]
    log_path: str | None
    cached_from: str | None = None
    """The run whose execution a cached step reused (its log is there)."""

    @property
    def label(self) -> str:
        """`step` or `step[i]` / `step[i.j]` for loop iterations."""
        return label_of(self.step_id, self.iteration)

    def to_json(self) -> dict[str, Any]:
        """The JSON form used by `--json` and `runs show --json`."""
        return {
            "id": self.step_id,
            "iteration": list(self.iteration),
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "attempts": self.attempts,
            "duration": None if self.duration is None else round(self.duration, 6),
            "outputs": self.outputs,
            "artifacts": self.artifacts,
            "log": self.log_path,
        }


@dataclass
class RunResult:
    """What a run did: its id, status and every step instance."""

    run_id: str
    pipeline: str
    status: str
    steps: list[StepResult]
    errors: list[str] = field(default_factory=list)
    duration: float | None = None

    @property
    def ok(self) -> bool:
        """Whether the run succeeded."""
        return self.status == SUCCEEDED

    @property
    def exit_code(self) -> int:
        """0 succeeded, 130 interrupted, 1 otherwise."""
        if self.ok:
            return 0
        return EXIT_INTERRUPTED if self.status == "interrupted" else 1

    def step(self, step_id: str, iteration: Sequence[int] = ()) -> StepResult:
        """One step instance by id (and iteration)."""
        for result in self.steps:
            if result.step_id == step_id and result.iteration == tuple(iteration):
                return result
        raise KeyError(label_of(step_id, tuple(iteration)))

    def output(self, step_id: str, name: str = "output", iteration: Sequence[int] = ()) -> Any:
        """A step output: its JSON value, or the object loaded from the artifact store."""
        result = self.step(step_id, iteration)
        if name in result.outputs:
            return result.outputs[name]
        return store.read(result.artifacts[name])

    def to_json(self) -> dict[str, Any]:
        """The machine-readable summary printed by `pipec run --json`."""
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "status": self.status,
            "duration": None if self.duration is None else round(self.duration, 6),
            "errors": self.errors,
            "steps": [s.to_json() for s in self.steps],
        }


def label_of(step_id: str, iteration: Sequence[int]) -> str:
    """How a step instance is named to people."""
    return f"{step_id}[{iteration_key(iteration)}]" if iteration else step_id


def step_result(record: StepRecord) -> StepResult:
    """The result view of a stored step record (JSON values too big for the store are read
    back from the artifact store)."""
    outputs: dict[str, Any] = {}
    for name, artifact in record.artifacts.items():
        if artifact.is_value:
            outputs[name] = artifact.value()
        elif artifact.materializer == "json":
            found, value = store.read_value(artifact.uri)
            if found:
                outputs[name] = value
    return StepResult(
        step_id=record.step_id,
        iteration=parse_iteration(record.iteration),
        name=record.name,
        status=record.status,
        reason=record.reason,
        attempts=record.attempts,
        duration=record.duration,
        outputs=outputs,
        artifacts={n: a.uri for n, a in record.artifacts.items()},
        log_path=record.log_path,
        cached_from=record.cached_from,
    )


def with_values(record: StepRecord, values: Mapping[tuple[str, str, str], str]) -> StepRecord:
    """A copy of `record` whose artifacts carry the JSON values recorded for them."""
    artifacts = {
        name: dataclasses.replace(
            artifact,
            value_json=values.get((record.step_id, record.iteration, name), artifact.value_json),
        )
        for name, artifact in record.artifacts.items()
    }
    return dataclasses.replace(record, artifacts=artifacts)


def stored_result(metadata: MetadataStore, run_id: str) -> RunResult:
    """A run's result rebuilt from the metadata store (`pipec runs show`)."""
    run = metadata.get_run(run_id)
    if run is None:
        raise RunError(f"no run {run_id!r} in {metadata.path}")
    position = {step_id: i for i, step_id in enumerate(order_of(run.plan))}
    records = sorted(
        metadata.steps_of(run_id),
        key=lambda r: (position.get(r.step_id, 0), parse_iteration(r.iteration)),
    )
    duration = run.ended_at - run.started_at if run.ended_at else None
    return RunResult(
        run_id=run.run_id,
        pipeline=run.pipeline_name,
        status=run.status,
        steps=[step_result(r) for r in records],
        duration=duration,
    )


def log_tail(path: str | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a step log ("" when there is none), read from its last
    `LOG_TAIL_BYTES` only; a line longer than `LOG_LINE_CHARS` is cut in the middle, saying
    how many characters were left out."""
    if not path:
        return ""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(0, size - LOG_TAIL_BYTES)
            handle.seek(start)
            data = handle.read(LOG_TAIL_BYTES)
    except OSError:  # no log (the step never started), or not a file
        return ""
    read = data.decode("utf-8", errors="replace").rstrip("\n").splitlines()
    shown = read[-lines:]
    if start and shown and len(read) <= lines:
        # The first line shown starts before what was read.
        shown[0] = f"[{start:,} earlier bytes not read] " + shown[0]
    return "\n".join(_cut(line) for line in shown)


def _cut(line: str) -> str:
    if len(line) <= LOG_LINE_CHARS:
        return line
    half = LOG_LINE_CHARS // 2
    left_out = len(line) - 2 * half
    return f"{line[:half]} [... {left_out:,} characters cut ...] {line[-half:]}"
