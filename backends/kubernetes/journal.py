"""What a restarted in-cluster driver resumes from: the runs' finished steps, kept in the
artifact store beside their outputs.

The driver's metadata store is SQLite in the pod's scratch space, gone with the pod. So every
step instance that finishes (succeeded, or served from the cache) is also written as one small
JSON file under `<artifact_root>/<run_id>/.pipec-journal/`, after its outputs are stored. A
restarted driver reads them back as the run's earlier records, and the scheduler keeps those
instances exactly as a local `--resume` keeps finished steps (`runner.reuse.Reuse.kept`: only
while their outputs still exist). Step ids never start with `.`, so the folder cannot meet a
step's outputs.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import secrets
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipec.backends.runner.expansion import OK
from pipec.backends.runner.metadata import MetadataStore
from pipec.backends.runner.records import ArtifactRecord, StepRecord
from pipec.backends.runtime import store

FOLDER = ".pipec-journal"


class Journal:
    """The finished step instances of one run, in the artifact store."""

    def __init__(self, artifact_root: str, run_id: str) -> None:
        self.folder = f"{artifact_root.rstrip('/')}/{run_id}/{FOLDER}"

    def _file(self, step_id: str, iteration: str) -> str:
        return f"{self.folder}/{step_id}@{iteration or '-'}.json"

    def record(self, step: StepRecord) -> None:
        """Keep a finished step instance (atomically: a reader sees all of it or nothing)."""
        data = asdict(step)
        data.pop("log_path", None)  # a path in the pod that wrote it
        text = json.dumps(data, sort_keys=True).encode()
        target = self._file(step.step_id, step.iteration)
        if store.is_remote(target):
            fs, path = importlib.import_module("fsspec").core.url_to_fs(target)
            fs.pipe_file(path, text)
            return
        path = store.local_path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
        staging.write_bytes(text)
        os.replace(staging, path)

    def load(self) -> dict[tuple[str, str], StepRecord]:
        """Every kept instance, by (step id, iteration)."""
        found: dict[tuple[str, str], StepRecord] = {}
        for text in self._texts():
            with contextlib.suppress(ValueError, TypeError, KeyError):
                step = _step_record(json.loads(text))
                found[(step.step_id, step.iteration)] = step
        return found

    def _texts(self) -> list[str]:
        if store.is_remote(self.folder):
            fs, path = importlib.import_module("fsspec").core.url_to_fs(self.folder)
            if not fs.exists(path):
                return []
            return [
                fs.cat_file(p).decode()
                for p in sorted(fs.ls(path, detail=False))
                if str(p).endswith(".json")
            ]
        folder = store.local_path(self.folder)
        if not folder.is_dir():
            return []
        return [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.json"))]


def _step_record(data: dict[str, Any]) -> StepRecord:
    artifacts = {k: ArtifactRecord(**v) for k, v in data.pop("artifacts").items()}
    return StepRecord(**data, artifacts=artifacts)


class JournaledMetadata(MetadataStore):
    """The driver's metadata store: SQLite in scratch space, plus the journal of finished
    step instances in the artifact store."""

    def __init__(self, path: Path, journal: Journal) -> None:
        super().__init__(path)
        self.journal = journal

    def save_step(self, step: StepRecord) -> None:
        """Save as usual; a finished instance also goes to the journal."""
        super().save_step(step)
        if step.status in OK:
            self.journal.record(step)
