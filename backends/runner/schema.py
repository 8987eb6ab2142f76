"""The metadata store's tables, and how a store written by an earlier pipec is brought up to date.

`PRAGMA user_version` says which version of the schema a store has. A store below
`SCHEMA_VERSION` is upgraded in one write transaction (`MetadataStore` takes it): tables and
indexes are created if missing, the columns added since the first version are added to `runs`,
indexes that served lookups which grow with history are replaced, and the running mean durations
are seeded once from the history already recorded.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 2
"""`PRAGMA user_version` of a store this pipec has brought up to date (0: a new store, or one
written by a pipec before run owners, run options and the duration table; 1 was never used)."""

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
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_at, run_id);
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
DROP INDEX IF EXISTS steps_by_cache_key;
DROP INDEX IF EXISTS steps_by_step;
CREATE INDEX IF NOT EXISTS steps_by_key_and_end ON steps (step_id, cache_key, ended_at);
CREATE INDEX IF NOT EXISTS steps_by_instance_and_end ON steps (step_id, iteration, ended_at);
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
CREATE TABLE IF NOT EXISTS step_durations (
    pipeline_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    mean REAL NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (pipeline_id, step_id)
);
"""

# Columns added to `runs` after its first version (ALTER TABLE on an older store).
ADDED_RUN_COLUMNS = {"runner_start": "TEXT", "runner_role": "TEXT", "options": "TEXT"}

DURATION_WEIGHT = 20
"""A step's mean duration weighs its latest execution at least 1/20: the mean follows the
step's recent history and costs one row however long that history is."""

SEED_DURATIONS = (
    "INSERT OR IGNORE INTO step_durations (pipeline_id, step_id, mean, count) "
    "SELECT r.pipeline_id, s.step_id, AVG(s.ended_at - s.started_at), "
    f"MIN(COUNT(*), {DURATION_WEIGHT}) FROM steps s JOIN runs r ON r.run_id = s.run_id "
    "WHERE s.status='succeeded' AND s.started_at IS NOT NULL AND s.ended_at IS NOT NULL "
    "GROUP BY r.pipeline_id, s.step_id"
)


def version(db: sqlite3.Connection) -> int:
    """The store's schema version (0: new, or written before versions were recorded)."""
    found: int = db.execute("PRAGMA user_version").fetchone()[0]
    return found


def upgrade(db: sqlite3.Connection) -> None:
    """Bring the store to `SCHEMA_VERSION` (in the caller's write transaction)."""
    if version(db) >= SCHEMA_VERSION:
        return  # another process did it while this one waited for the write lock
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    present = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    for column, kind in ADDED_RUN_COLUMNS.items():
        if column not in present:
            db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
    db.execute(SEED_DURATIONS)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
