"""Rows of the metadata store read back as records (`runner.records`): one function per table.

Shared by the store's write side (`runner.metadata`) and its history queries
(`runner.metadata_history`), so a column added to a table is read in one place.
"""

from __future__ import annotations

import json
import sqlite3

from pipec.backends.runner.records import ArtifactRecord, Owner, RunRecord, StepRecord


def owner_of(row: sqlite3.Row) -> Owner | None:
    """The holder of a run row; a row without a role was written before owners were recorded
    (its pid is that of a runner long gone, or of one that does not take locks)."""
    if row["runner_pid"] is None or row["runner_role"] is None:
        return None
    return Owner(
        pid=row["runner_pid"],
        host=row["runner_host"] or "",
        start=row["runner_start"],
        role=row["runner_role"],
    )


def run_of(row: sqlite3.Row) -> RunRecord:
    options = row["options"]
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
        owner=owner_of(row),
        options=json.loads(options) if options else {},
        paused=row["paused"] or 0.0,
    )


def step_of(row: sqlite3.Row) -> StepRecord:
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


def artifact_of(row: sqlite3.Row) -> ArtifactRecord:
    return ArtifactRecord(
        output=row["output"],
        uri=row["uri"],
        hash=row["hash"],
        type=row["type"],
        materializer=row["materializer"],
        value_json=row["value"],
    )
