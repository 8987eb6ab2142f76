"""What the metadata store keeps, as Python records: runs, step instances, artifacts, owners.

The records are plain data; `runner.metadata` reads and writes them in SQLite. Secrets never
reach them: they hold names, statuses, timings, URIs, hashes and JSON output values, never a
step's environment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Values bigger than this stay in the artifact store only (a `runs show` would not want them
# either).
MAX_RECORDED_VALUE = 64 * 1024


@dataclass
class ArtifactRecord:
    """One output of one step execution."""

    output: str
    uri: str
    hash: str
    type: str
    materializer: str
    value_json: str | None = None

    @property
    def is_value(self) -> bool:
        """Whether the output is a JSON value recorded here."""
        return self.value_json is not None

    def value(self) -> Any:
        """The JSON value (only meaningful when `is_value`)."""
        return json.loads(self.value_json) if self.value_json is not None else None

    def without_value(self) -> ArtifactRecord:
        """The same artifact without its JSON text (read back from the store when needed)."""
        if self.value_json is None:
            return self
        return ArtifactRecord(self.output, self.uri, self.hash, self.type, self.materializer)


@dataclass
class StepRecord:
    """One step instance (a step, or one loop iteration of it) in one run."""

    run_id: str
    step_id: str
    iteration: str
    name: str
    status: str
    reason: str = ""
    started_at: float | None = None
    ended_at: float | None = None
    attempts: int = 0
    cached_from: str | None = None
    cache_key: str | None = None
    cache_parts: dict[str, Any] | None = None
    log_path: str | None = None
    artifacts: dict[str, ArtifactRecord] = field(default_factory=dict)
    inputs: dict[str, list[str]] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        """Seconds between start and end, when both are known."""
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at


@dataclass(frozen=True)
class Owner:
    """The process that runs or resumes a run (see `runner.owner`): its pid and host, and what
    tells it from a later process with the same pid (`start`: the boot and the process's start
    time; None where the system does not say)."""

    pid: int
    host: str
    start: str | None
    role: str
    """"run" (the run's first runner) or "resume"."""


@dataclass
class RunRecord:
    """One run of one pipeline. `plan` is the JSON text of its plan, kept as text (read only
    when the run is resumed or shown, by `runner.plan.load`), so a run recorded by another
    version of pipec can still be listed and shown. `options` are the run's options that decide
    what runs (`no_cache`, `parallelism`): a resume applies them again. `owner` is the process
    that holds the run while it runs (None once it ended, or for runs recorded before owners
    were)."""

    run_id: str
    pipeline_id: str
    pipeline_name: str
    status: str
    started_at: float
    ended_at: float | None
    params: dict[str, Any]
    plan: str
    project_root: str
    artifact_root: str
    owner: Owner | None = None
    options: dict[str, Any] = field(default_factory=dict)


def iteration_key(iteration: Sequence[int]) -> str:
    """How an iteration tuple is spelled in the store: "" outside loops, "2", "2.0" nested."""
    return ".".join(str(i) for i in iteration)


def parse_iteration(text: str) -> tuple[int, ...]:
    """The inverse of `iteration_key`."""
    return tuple(int(part) for part in text.split(".")) if text else ()


def artifact_from_meta(
    output: str, uri: str, meta: Mapping[str, Any], value_json: str | None
) -> ArtifactRecord:
    """An artifact record from an output's meta.json (and its JSON text when it is a value)."""
    if value_json is not None and len(value_json) > MAX_RECORDED_VALUE:
        value_json = None
    return ArtifactRecord(
        output=output,
        uri=uri,
        hash=str(meta["hash"]),
        type=str(meta["type"]),
        materializer=str(meta["materializer"]),
        value_json=value_json,
    )
