"""The run metadata store: runs, step executions and artifacts (with lineage) in SQLite.

One database per project (`<project>/.pipec/metadata.db`), in WAL mode so that `pipec runs` can
read while runs write, with a busy timeout so two runs at the same time wait for each other's short
write transactions instead of failing. A runner batches its writes and commits before it waits for
steps, so it never holds the write lock while idle.

Secrets never reach this store: it records names, statuses, timings, URIs, hashes and JSON output
values, never a step's environment.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    pipeline_id TEXT NOT NULL,
    pipeline_name TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    params TEXT NOT NULL,
    plan TEXT NOT NULL,
    project_root TEXT NOT NULL,
    artifact_root TEXT NOT NULL,
    runner_pid INTEGER,
    runner_host TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    iteration TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    started_at REAL,
    ended_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    cached_from TEXT,
    cache_key TEXT,
    cache_parts TEXT,
    log_path TEXT,
    PRIMARY KEY (run_id, step_id, iteration)
);
CREATE INDEX IF NOT EXISTS steps_by_cache_key ON steps (cache_key, status);
CREATE INDEX IF NOT EXISTS steps_by_step ON steps (step_id, iteration, status);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    iteration TEXT NOT NULL,
    output TEXT NOT NULL,
    uri TEXT NOT NULL,
    hash TEXT NOT NULL,
    type TEXT NOT NULL,
    materializer TEXT NOT NULL,
    value TEXT,
    PRIMARY KEY (run_id, step_id, iteration, output)
);
CREATE TABLE IF NOT EXISTS consumers (
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    iteration TEXT NOT NULL,
    input TEXT NOT NULL,
    uri TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS consumers_by_uri ON consumers (uri);
CREATE INDEX IF NOT EXISTS consumers_by_step ON consumers (run_id, step_id, iteration);
"""

# Values bigger than this stay in the store only (a `runs show` would not want them either).
MAX_RECORDED_VALUE = 64 * 1024

# Column lists for the INSERTs (rows are read back by name).
RUN_COLUMNS = (
    *("run_id", "pipeline_id", "pipeline_name", "status", "started_at", "ended_at"),
    *("params", "plan", "project_root", "artifact_root", "runner_pid", "runner_host"),
)
STEP_COLUMNS = (
    *("run_id", "step_id", "iteration", "name", "status", "reason", "started_at", "ended_at"),
    *("attempts", "cached_from", "cache_key", "cache_parts", "log_path"),
)
ARTIFACT_COLUMNS = (
    *("run_id", "step_id", "iteration", "output", "uri", "hash", "type", "materializer"),
    "value",
)
CONSUMER_COLUMNS = ("run_id", "step_id", "iteration", "input", "uri")


def _insert(table: str, columns: Sequence[str], verb: str = "INSERT") -> str:
    marks = ", ".join("?" * len(columns))
    return f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({marks})"


INSERT_RUN = _insert("runs", RUN_COLUMNS)
SAVE_STEP = _insert("steps", STEP_COLUMNS, "INSERT OR REPLACE")
INSERT_ARTIFACT = _insert("artifacts", ARTIFACT_COLUMNS)
INSERT_CONSUMER = _insert("consumers", CONSUMER_COLUMNS)


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


@dataclass
class RunRecord:
    """One run of one pipeline. `plan` is the JSON text of its plan, kept as text (read only
    when the run is resumed or shown, by `runner.plan.load`), so a run recorded by another
    version of pipec can still be listed and shown."""

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
    runner_pid: int | None
    runner_host: str | None


def iteration_key(iteration: Sequence[int]) -> str:
    """How an iteration tuple is spelled in the store: "" outside loops, "2", "2.0" nested."""
    return ".".join(str(i) for i in iteration)


def parse_iteration(text: str) -> tuple[int, ...]:
    """The inverse of `iteration_key`."""
    return tuple(int(part) for part in text.split(".")) if text else ()


class MetadataStore:
    """A connection to one project's metadata database."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Autocommit off (the sqlite3 default): writes batch until `commit()`.
        self._db = sqlite3.connect(path, timeout=60.0, check_same_thread=False)
        self._db.row_factory = sqlite3.Row  # rows are read by column name
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=60000")
        with self._db:
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        """Commit what is pending and close."""
        self._db.commit()
        self._db.close()

    def commit(self) -> None:
        """Make pending writes visible to other processes and release the write lock."""
        self._db.commit()

    # ---------------------------------------------------------------------------------- runs

    def create_run(self, run: RunRecord) -> None:
        """Record a new run."""
        self._db.execute(
            INSERT_RUN,
            (
                run.run_id,
                run.pipeline_id,
                run.pipeline_name,
                run.status,
                run.started_at,
                run.ended_at,
                json.dumps(run.params, sort_keys=True),
                run.plan,
                run.project_root,
                run.artifact_root,
                run.runner_pid,
                run.runner_host,
            ),
        )
        self.commit()

    def set_run_status(
        self, run_id: str, status: str, *, ended: bool, runner_pid: int | None = None
    ) -> None:
        """Update a run's status (and end time, and the pid of the process running it)."""
        self._db.execute(
            "UPDATE runs SET status=?, ended_at=?, runner_pid=COALESCE(?, runner_pid) "
            "WHERE run_id=?",
            (status, time.time() if ended else None, runner_pid, run_id),
        )
        self.commit()

    def get_run(self, run_id: str) -> RunRecord | None:
        """One run, or None when the id is unknown."""
        row = self._db.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return _run(row) if row else None

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        """The most recent runs, newest first."""
        rows = self._db.execute(
            "SELECT * FROM runs ORDER BY started_at DESC, run_id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [_run(row) for row in rows]

    # --------------------------------------------------------------------------------- steps

    def save_step(self, step: StepRecord) -> None:
        """Insert or replace one step instance with its artifacts and inputs (not committed)."""
        key = (step.run_id, step.step_id, step.iteration)
        self._db.execute(
            SAVE_STEP,
            (
                *key,
                step.name,
                step.status,
                step.reason,
                step.started_at,
                step.ended_at,
                step.attempts,
                step.cached_from,
                step.cache_key,
                json.dumps(step.cache_parts, sort_keys=True) if step.cache_parts else None,
                step.log_path,
            ),
        )
        self._db.execute("DELETE FROM artifacts WHERE run_id=? AND step_id=? AND iteration=?", key)
        self._db.executemany(
            INSERT_ARTIFACT,
            [
                (*key, a.output, a.uri, a.hash, a.type, a.materializer, a.value_json)
                for a in step.artifacts.values()
            ],
        )
        self._db.execute("DELETE FROM consumers WHERE run_id=? AND step_id=? AND iteration=?", key)
        self._db.executemany(
            INSERT_CONSUMER,
            [(*key, name, uri) for name, uris in step.inputs.items() for uri in uris],
        )

    def steps_of(self, run_id: str) -> list[StepRecord]:
        """Every step instance of a run, with artifacts and inputs, in start order."""
        rows = self._db.execute(
            "SELECT * FROM steps WHERE run_id=? ORDER BY COALESCE(started_at, ended_at), step_id, "
            "iteration",
            (run_id,),
        ).fetchall()
        records = {(r["step_id"], r["iteration"]): _step(r) for r in rows}
        for row in self._db.execute("SELECT * FROM artifacts WHERE run_id=?", (run_id,)):
            record = records.get((row["step_id"], row["iteration"]))
            if record is not None:
                record.artifacts[row["output"]] = _artifact(row)
        for row in self._db.execute("SELECT * FROM consumers WHERE run_id=?", (run_id,)):
            record = records.get((row["step_id"], row["iteration"]))
            if record is not None:
                record.inputs.setdefault(row["input"], []).append(row["uri"])
        return list(records.values())

    def find_cached(self, step_id: str, cache_key: str) -> StepRecord | None:
        """The latest finished execution of `step_id` with this cache key, with its artifacts."""
        row = self._db.execute(
            "SELECT * FROM steps WHERE cache_key=? AND step_id=? "
            "AND status IN ('succeeded', 'cached') ORDER BY ended_at DESC LIMIT 1",
            (cache_key, step_id),
        ).fetchone()
        if row is None:
            return None
        record = _step(row)
        for art in self._db.execute(
            "SELECT * FROM artifacts WHERE run_id=? AND step_id=? AND iteration=?",
            (record.run_id, record.step_id, record.iteration),
        ):
            record.artifacts[art["output"]] = _artifact(art)
        return record

    def previous_execution(
        self, pipeline_id: str, step_id: str, iteration: str, before_run: str
    ) -> StepRecord | None:
        """The latest finished execution of this step instance in another run of the pipeline
        (what a cache miss is explained against)."""
        row = self._db.execute(
            "SELECT s.* FROM steps s JOIN runs r ON r.run_id = s.run_id "
            "WHERE r.pipeline_id=? AND s.step_id=? AND s.iteration=? AND s.run_id != ? "
            "AND s.status IN ('succeeded', 'cached') AND s.cache_parts IS NOT NULL "
            "ORDER BY s.ended_at DESC LIMIT 1",
            (pipeline_id, step_id, iteration, before_run),
        ).fetchone()
        return _step(row) if row else None

    def mean_durations(self, pipeline_id: str) -> dict[str, float]:
        """Step id -> mean measured duration of its executed (not cached) runs so far."""
        rows = self._db.execute(
            "SELECT s.step_id, AVG(s.ended_at - s.started_at) AS mean FROM steps s "
            "JOIN runs r ON r.run_id = s.run_id WHERE r.pipeline_id=? AND s.status='succeeded' "
            "AND s.started_at IS NOT NULL AND s.ended_at IS NOT NULL GROUP BY s.step_id",
            (pipeline_id,),
        )
        return {row["step_id"]: float(row["mean"]) for row in rows}


def _run(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        pipeline_id=row["pipeline_id"],
        pipeline_name=row["pipeline_name"],
        status=row["status"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        params=json.loads(row["params"]),
        plan=row["plan"],
        project_root=row["project_root"],
        artifact_root=row["artifact_root"],
        runner_pid=row["runner_pid"],
        runner_host=row["runner_host"],
    )


def _step(row: sqlite3.Row) -> StepRecord:
    parts = row["cache_parts"]
    return StepRecord(
        run_id=row["run_id"],
        step_id=row["step_id"],
        iteration=row["iteration"],
        name=row["name"],
        status=row["status"],
        reason=row["reason"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        attempts=row["attempts"],
        cached_from=row["cached_from"],
        cache_key=row["cache_key"],
        cache_parts=json.loads(parts) if parts else None,
        log_path=row["log_path"],
    )


def _artifact(row: sqlite3.Row) -> ArtifactRecord:
    return ArtifactRecord(
        output=row["output"],
        uri=row["uri"],
        hash=row["hash"],
        type=row["type"],
        materializer=row["materializer"],
        value_json=row["value"],
    )


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
