"""The metadata store's history queries (read-only but for `delete_runs`): runs by pipeline and
status, lineage (who recorded and who read an output location), and what `runs delete`/`gc`
need. A mixin of `MetadataStore`, kept apart so the store's run-time side stays small.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence

from pipec.backends.runner.records import ArtifactRecord, RunRecord, StepRecord
from pipec.backends.runner.rows import artifact_of, run_of, step_of


class HistoryQueries:
    """Queries over a project's whole history (`MetadataStore` provides `_db`, `_immediate`)."""

    _db: sqlite3.Connection

    def _immediate(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def find_runs(
        self, pipeline: str | None = None, statuses: Sequence[str] = (), limit: int | None = None
    ) -> list[RunRecord]:
        """Runs newest first; `pipeline` matches a pipeline's name or id, `statuses` the stored
        status (a run whose runner died is stored as `running`)."""
        where: list[str] = []
        args: list[object] = []
        if pipeline is not None:
            where.append("(pipeline_name=? OR pipeline_id=?)")
            args += [pipeline, pipeline]
        if statuses:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            args += list(statuses)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY started_at DESC, run_id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [run_of(row) for row in self._db.execute(sql, args)]

    def producers_of(self, uri: str) -> list[tuple[StepRecord, str]]:
        """Every step instance recorded with an output at `uri` (the one that wrote it, and
        those that reused it from the cache), with the output's name; oldest first."""
        rows = self._db.execute(
            "SELECT s.*, a.output AS artifact_output FROM artifacts a JOIN steps s "
            "ON s.run_id=a.run_id AND s.step_id=a.step_id AND s.iteration=a.iteration "
            "WHERE a.uri=? ORDER BY COALESCE(s.ended_at, s.started_at), s.run_id",
            (uri,),
        ).fetchall()
        return [(step_of(row), row["artifact_output"]) for row in rows]

    def consumers_of(self, uri: str) -> list[tuple[StepRecord, str]]:
        """Every step instance that read the output at `uri`, with the input it read it as."""
        rows = self._db.execute(
            "SELECT s.*, c.input AS consumer_input FROM consumers c JOIN steps s "
            "ON s.run_id=c.run_id AND s.step_id=c.step_id AND s.iteration=c.iteration "
            "WHERE c.uri=? ORDER BY COALESCE(s.started_at, s.ended_at), s.run_id, s.step_id",
            (uri,),
        ).fetchall()
        return [(step_of(row), row["consumer_input"]) for row in rows]

    def artifact(self, run_id: str, step_id: str, iteration: str, output: str) -> ArtifactRecord:
        """One recorded output (KeyError when there is none)."""
        row = self._db.execute(
            "SELECT * FROM artifacts WHERE run_id=? AND step_id=? AND iteration=? AND output=?",
            (run_id, step_id, iteration, output),
        ).fetchone()
        if row is None:
            raise KeyError(output)
        return artifact_of(row)

    def uris_used_by(self, run_ids: Sequence[str]) -> set[str]:
        """Every output location the runs recorded: what their steps wrote or reused from the
        cache, and what they read."""
        found: set[str] = set()
        for start in range(0, len(run_ids), 500):  # SQLite's limit on bound parameters
            chunk = list(run_ids[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            for table in ("artifacts", "consumers"):
                rows = self._db.execute(
                    f"SELECT DISTINCT uri FROM {table} WHERE run_id IN ({marks})", chunk
                )
                found.update(row["uri"] for row in rows)
        return found

    def pipeline_names(self) -> list[str]:
        """The names of every pipeline with a recorded run, sorted."""
        rows = self._db.execute("SELECT DISTINCT pipeline_name FROM runs ORDER BY pipeline_name")
        return [row["pipeline_name"] for row in rows]

    def all_run_ids(self) -> list[str]:
        """Every recorded run id."""
        return [row["run_id"] for row in self._db.execute("SELECT run_id FROM runs")]

    def delete_runs(self, run_ids: Sequence[str]) -> None:
        """Forget these runs: their rows, step instances, outputs and lineage, in one
        transaction (their files are the caller's business; measured durations stay)."""
        with self._immediate():
            for run_id in run_ids:
                for table in ("consumers", "artifacts", "steps", "runs"):
                    self._db.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))
