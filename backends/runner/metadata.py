"""The run metadata store: runs, step executions and artifacts (with lineage) in SQLite.

One database per project (`<project>/.pipec/metadata.db`), in WAL mode so that `pipec runs` can
read while runs write, with a busy timeout so two runs at the same time wait for each other's short
write transactions instead of failing. A runner batches its writes and commits before it waits for
steps, so it never holds the write lock while idle. The records are in `runner.records`.

A run has one owner at a time: `claim_run` checks the recorded owner and writes the new one in
one IMMEDIATE transaction (SQLite's write lock), so of two processes claiming a run at once one
wins and the other sees the winner. Lookups that every step does (the cache, the step's latest
execution) are served by indexes that end in `ended_at`, and measured durations are kept as one
running mean per step, so neither grows with the project's history.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path

from pipec.backends.runner import owner as owners
from pipec.backends.runner import schema
from pipec.backends.runner.metadata_history import HistoryQueries
from pipec.backends.runner.records import Owner, RunRecord, StepRecord
from pipec.backends.runner.rows import artifact_of, owner_of, run_of, step_of

# Column lists for the INSERTs (rows are read back by name).
RUN_COLUMNS = (
    *("run_id", "pipeline_id", "pipeline_name", "status", "started_at", "ended_at"),
    *("params", "plan", "project_root", "artifact_root", "options"),
    *("runner_pid", "runner_host", "runner_start", "runner_role"),
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
STOPPED_AT = (
    "COALESCE(ended_at, (SELECT MAX(COALESCE(s.ended_at, s.started_at)) FROM steps s "
    "WHERE s.run_id = runs.run_id), started_at)"
)
"""When a run stopped: its end, or for a runner that died, the last thing it recorded."""
RECORD_DURATION = (
    "INSERT INTO step_durations (pipeline_id, step_id, mean, count) VALUES (?, ?, ?, 1) "
    "ON CONFLICT (pipeline_id, step_id) DO UPDATE SET "
    f"mean = mean + (excluded.mean - mean) / MIN(count + 1, {schema.DURATION_WEIGHT}), "
    f"count = MIN(count + 1, {schema.DURATION_WEIGHT})"
)


class MetadataStore(HistoryQueries):
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
        if schema.version(self._db) < schema.SCHEMA_VERSION:
            self._upgrade()
        # The `pipec` program exits without tearing the interpreter down (`pipec.program`):
        # its exit handlers close a store nobody closed, as collecting it would have (what was
        # not committed rolls back; SQLite folds its write-ahead log into the file).
        weakref.finalize(self, self._db.close)

    def _upgrade(self) -> None:
        """Create the tables, or bring a store written by an earlier pipec up to date (one
        writer at a time; the second finds it done)."""
        with self._immediate():
            schema.upgrade(self._db)

    @contextlib.contextmanager
    def _immediate(self) -> Iterator[None]:
        """One transaction that holds the write lock from its start (reads in it see what no
        other writer can change before it commits)."""
        self._db.commit()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.rollback()
            raise
        self._db.commit()

    def close(self) -> None:
        """Commit what is pending and close."""
        self._db.commit()
        self._db.close()

    def commit(self) -> None:
        """Make pending writes visible to other processes and release the write lock."""
        self._db.commit()

    # ---------------------------------------------------------------------------------- runs

    def create_run(self, run: RunRecord) -> None:
        """Record a new run (held by `run.owner`)."""
        holder = run.owner
        self._db.execute(
            INSERT_RUN,
            (
                *(run.run_id, run.pipeline_id, run.pipeline_name, run.status),
                *(run.started_at, run.ended_at, json.dumps(run.params, sort_keys=True)),
                *(run.plan, run.project_root, run.artifact_root),
                json.dumps(run.options, sort_keys=True),
                *_owner_columns(holder),
            ),
        )
        self.commit()

    def claim_run(self, run_id: str, me: Owner) -> Owner | None:
        """Make `me` the owner of a run unless another process holds it, alive or on another
        host; return that holder (None: the run is now `me`'s). A holder that died (or whose pid
        now belongs to another process) no longer holds the run."""
        with self._immediate():
            row = self._db.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
            holder = owner_of(row) if row else None
            if holder is not None and holder != me and owners.alive(holder) is not False:
                return holder
            self._db.execute(
                "UPDATE runs SET runner_pid=?, runner_host=?, runner_start=?, runner_role=? "
                "WHERE run_id=?",
                (*_owner_columns(me), run_id),
            )
        return None

    def release_run(self, run_id: str, me: Owner) -> None:
        """Give up a run `me` holds (a run held by another process is left alone)."""
        self._db.execute(
            "UPDATE runs SET runner_pid=NULL, runner_host=NULL, runner_start=NULL, "
            "runner_role=NULL WHERE run_id=? AND runner_pid=? AND runner_host=? "
            "AND runner_start IS ?",
            (run_id, me.pid, me.host, me.start),
        )
        self.commit()

    def unlock_run(self, run_id: str, holder: Owner) -> bool:
        """Take the lock of a holder known to be gone from the run (False: the run's holder is
        no longer `holder`)."""
        changed = self._db.execute(
            "UPDATE runs SET runner_pid=NULL, runner_host=NULL, runner_start=NULL, "
            "runner_role=NULL WHERE run_id=? AND runner_pid=? AND runner_host IS ? "
            "AND runner_start IS ? AND runner_role IS ?",
            (run_id, holder.pid, holder.host, holder.start, holder.role),
        ).rowcount
        self.commit()
        return changed == 1

    def reopen_run(self, run_id: str, options: dict[str, object]) -> None:
        """A resumed run runs again, with these options. The time since it stopped (its end, or
        for a runner that died, the last step it recorded) is added to `paused`, so its
        duration counts running time only."""
        self._db.execute(
            "UPDATE runs SET status='running', ended_at=NULL, options=?, "
            f"paused = COALESCE(paused, 0) + MAX(0, ? - {STOPPED_AT}) WHERE run_id=?",
            (json.dumps(options, sort_keys=True), time.time(), run_id),
        )
        self.commit()

    def end_run(self, run_id: str, status: str, me: Owner | None) -> None:
        """Record how a run ended and give it up."""
        self._db.execute(
            "UPDATE runs SET status=?, ended_at=? WHERE run_id=?", (status, time.time(), run_id)
        )
        if me is not None:
            self.release_run(run_id, me)
        self.commit()

    def get_run(self, run_id: str) -> RunRecord | None:
        """One run, or None when the id is unknown."""
        row = self._db.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return run_of(row) if row else None

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        """The most recent runs, newest first."""
        rows = self._db.execute(
            "SELECT * FROM runs ORDER BY started_at DESC, run_id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [run_of(row) for row in rows]

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
        records = {(r["step_id"], r["iteration"]): step_of(r) for r in rows}
        for row in self._db.execute("SELECT * FROM artifacts WHERE run_id=?", (run_id,)):
            record = records.get((row["step_id"], row["iteration"]))
            if record is not None:
                record.artifacts[row["output"]] = artifact_of(row)
        for row in self._db.execute("SELECT * FROM consumers WHERE run_id=?", (run_id,)):
            record = records.get((row["step_id"], row["iteration"]))
            if record is not None:
                record.inputs.setdefault(row["input"], []).append(row["uri"])
        return list(records.values())

    def recorded_values(self, run_id: str) -> dict[tuple[str, str, str], str]:
        """(step id, iteration, output) -> the JSON text recorded for it, for a whole run."""
        rows = self._db.execute(
            "SELECT step_id, iteration, output, value FROM artifacts "
            "WHERE run_id=? AND value IS NOT NULL",
            (run_id,),
        )
        return {(r["step_id"], r["iteration"], r["output"]): r["value"] for r in rows}

    def find_cached(self, step_id: str, cache_key: str) -> StepRecord | None:
        """The latest finished execution of `step_id` with this cache key, with its artifacts."""
        row = self._db.execute(
            "SELECT * FROM steps WHERE step_id=? AND cache_key=? "
            "AND status IN ('succeeded', 'cached') ORDER BY ended_at DESC LIMIT 1",
            (step_id, cache_key),
        ).fetchone()
        if row is None:
            return None
        record = step_of(row)
        for art in self._db.execute(
            "SELECT * FROM artifacts WHERE run_id=? AND step_id=? AND iteration=?",
            (record.run_id, record.step_id, record.iteration),
        ):
            record.artifacts[art["output"]] = artifact_of(art)
        return record

    def previous_execution(
        self, pipeline_id: str, step_id: str, iteration: str, before_run: str
    ) -> StepRecord | None:
        """The latest finished execution of this step instance in another run of the pipeline
        (what a cache miss is explained against)."""
        row = self._db.execute(
            "SELECT s.* FROM steps s JOIN runs r ON r.run_id = s.run_id "
            "WHERE s.step_id=? AND s.iteration=? AND r.pipeline_id=? AND s.run_id != ? "
            "AND s.status IN ('succeeded', 'cached') AND s.cache_parts IS NOT NULL "
            "ORDER BY s.ended_at DESC LIMIT 1",
            (step_id, iteration, pipeline_id, before_run),
        ).fetchone()
        return step_of(row) if row else None

    def record_duration(self, pipeline_id: str, step_id: str, seconds: float) -> None:
        """Fold one measured execution of a step into its running mean (not committed)."""
        self._db.execute(RECORD_DURATION, (pipeline_id, step_id, seconds))

    def mean_durations(self, pipeline_id: str) -> dict[str, float]:
        """Step id -> mean measured duration of its recent executions (cached ones excluded)."""
        rows = self._db.execute(
            "SELECT step_id, mean FROM step_durations WHERE pipeline_id=?", (pipeline_id,)
        )
        return {row["step_id"]: float(row["mean"]) for row in rows}

    # ----------------------------------------------------------------------- learned imports

    def learned_imports(self, code_hashes: Sequence[str]) -> dict[str, tuple[list[str], str]]:
        """code hash -> (library modules its component imported, why they must not be
        preloaded: '' when they may), for the components of `code_hashes` that taught any."""
        found: dict[str, tuple[list[str], str]] = {}
        unique = sorted(set(code_hashes))
        for start in range(0, len(unique), 500):  # SQLite's limit on bound parameters
            chunk = unique[start : start + 500]
            rows = self._db.execute(
                "SELECT code_hash, modules, refused FROM learned_imports WHERE code_hash IN "
                f"({', '.join('?' * len(chunk))})",
                chunk,
            )
            for row in rows:
                found[row["code_hash"]] = (json.loads(row["modules"]), row["refused"])
        return found

    def learn_imports(self, code_hash: str, modules: Sequence[str], refused: str = "") -> None:
        """Record what a component imported (added to what it was seen to import before) or,
        with `refused`, why its modules must not be preloaded (kept until its code changes)."""
        with self._immediate():
            row = self._db.execute(
                "SELECT modules, refused FROM learned_imports WHERE code_hash=?", (code_hash,)
            ).fetchone()
            known: list[str] = json.loads(row["modules"]) if row else []
            seen = set(known)
            merged = known + [m for m in modules if m not in seen]
            reason = refused or (row["refused"] if row else "")
            self._db.execute(
                "INSERT OR REPLACE INTO learned_imports (code_hash, modules, refused, learned_at)"
                " VALUES (?, ?, ?, ?)",
                (code_hash, json.dumps(merged), reason, time.time()),
            )


def _owner_columns(holder: Owner | None) -> tuple[object, ...]:
    if holder is None:
        return (None, None, None, None)
    return (holder.pid, holder.host, holder.start, holder.role)
