"""Deleting runs (`pipec runs delete`, `pipec runs gc`) without breaking the runs that stay.

A run's outputs live under `<artifact_root>/<run_id>/`, but other runs may point there: a step
served from the cache records the outputs of the run that wrote them, and reads them as inputs.
So deleting runs removes their records first (one transaction), then every file under their
output folders **except** the outputs a remaining run recorded or read — those stay where they
are, and are removed by the delete that drops the last run using them. A run that is running
(its runner alive, or on another host where pipec cannot check) is never deleted. The step logs
of a deleted run (`.pipec/logs/<run_id>/`) go with it; measured step durations stay.

What was freed is counted (files and bytes), and what was kept is said with the runs that keep
it. Object-store roots (fsspec URLs) are cleaned through fsspec the same way.
"""

from __future__ import annotations

import importlib
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipec.backends.runner import owner as owners
from pipec.backends.runner.metadata import MetadataStore
from pipec.backends.runner.records import RunRecord
from pipec.backends.runner.results import RunError, status_of
from pipec.backends.runtime import store


@dataclass
class Freed:
    """What a delete removed (or, for a dry run, would remove)."""

    runs: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    kept: dict[str, list[str]] = field(default_factory=dict)
    """Output location -> the remaining runs that still use it (so it was not removed)."""


def select_for_gc(
    metadata: MetadataStore, keep: int | None, older_than: float | None, now: float
) -> list[RunRecord]:
    """The runs `gc` deletes: beyond the `keep` newest of their pipeline and (when given)
    started more than `older_than` seconds before `now`; never a run that is running."""
    if keep is None and older_than is None:
        raise RunError("say what to delete: --keep N, --older-than AGE, or both")
    seen: dict[str, int] = {}
    chosen: list[RunRecord] = []
    for run in metadata.find_runs():  # newest first
        # By name: a pipeline whose code changed (a new pipeline id) is the same one to people.
        seen[run.pipeline_name] = seen.get(run.pipeline_name, 0) + 1
        if keep is not None and seen[run.pipeline_name] <= keep:
            continue
        if older_than is not None and run.started_at > now - older_than:
            continue
        if busy(run):
            continue
        chosen.append(run)
    return chosen


def busy(run: RunRecord) -> bool:
    """Whether a process may be using the run: it is recorded as running and its runner is not
    known to be gone, or a live process holds it (a resume that has claimed it but not yet
    reopened it). A holder on another host cannot be checked, so it counts as alive."""
    if status_of(run) == "running":
        return True
    return run.owner is not None and owners.alive(run.owner) is not False


def delete_runs(
    metadata: MetadataStore, run_ids: Sequence[str], *, dry_run: bool = False
) -> Freed:
    """Delete these runs (see the module docstring); refuse unknown or running ones."""
    runs: list[RunRecord] = []
    for run_id in dict.fromkeys(run_ids):
        run = metadata.get_run(run_id)
        if run is None:
            raise RunError(f"no run {run_id!r} in {metadata.path}")
        if busy(run):
            holder = f" by pid {run.owner.pid} on {run.owner.host}" if run.owner else ""
            raise RunError(
                f"run {run_id} is running or being resumed{holder}: let it end (or stop it) "
                "before deleting it"
            )
        runs.append(run)
    doomed = {run.run_id for run in runs}
    remaining = [r for r in metadata.all_run_ids() if r not in doomed]
    needed = metadata.uris_used_by(remaining)
    referenced = metadata.uris_used_by(sorted(doomed))
    users = _users(metadata, needed & referenced, remaining)
    freed = Freed(runs=[run.run_id for run in runs])
    if not dry_run:
        metadata.delete_runs(freed.runs)
    for run in runs:
        folder = f"{run.artifact_root.rstrip('/')}/{run.run_id}"
        _remove_outputs(folder, referenced, needed, remaining, users, freed, dry_run)
        logs = metadata.path.parent / "logs" / run.run_id  # beside the store: `.pipec/logs`
        _remove_local(logs, set(), freed, dry_run)
    return freed


def _users(metadata: MetadataStore, kept: set[str], remaining: list[str]) -> dict[str, list[str]]:
    """Kept location -> the remaining runs that record or read it."""
    alive = set(remaining)
    found: dict[str, list[str]] = {}
    for uri in sorted(kept):
        runs = {r.run_id for r, _ in metadata.producers_of(uri)}
        runs |= {r.run_id for r, _ in metadata.consumers_of(uri)}
        found[uri] = sorted(runs & alive)
    return found


def _remove_outputs(
    folder: str, referenced: set[str], needed: set[str], remaining: list[str],
    users: dict[str, list[str]], freed: Freed, dry_run: bool,
) -> None:
    """Everything under a deleted run's output folder except what remaining runs need, plus
    the outputs the run used in folders of runs deleted before (kept then for it)."""
    inside = {u for u in needed if u.startswith(folder + "/")}
    for uri in inside:
        freed.kept[uri] = users.get(uri, [])
    alive = set(remaining)
    # Outputs this run used that lie in the folder of a run no longer recorded.
    strays = sorted(
        uri for uri in referenced - needed
        if not uri.startswith(folder + "/") and _run_of(uri) not in alive
    )
    if store.is_remote(folder):
        own = sorted(u for u in referenced - needed if u.startswith(folder + "/"))
        _remove_remote(folder, inside, own + strays, freed, dry_run)
        return
    _remove_local(store.local_path(folder), {store.local_path(u) for u in inside}, freed, dry_run)
    for uri in strays:
        _remove_local(store.local_path(uri), set(), freed, dry_run)
        if not dry_run:
            _prune_empty(store.local_path(uri), _run_of(uri))


def _prune_empty(removed: Path, run_id: str) -> None:
    """Remove the folders left empty above a removed output, up to its (deleted) run's folder."""
    if not run_id:
        return  # not in a run's folder: leave the folders above it alone
    for parent in removed.parents:
        try:
            parent.rmdir()  # only when empty
        except OSError:
            return
        if parent.name == run_id:
            return


def _run_of(uri: str) -> str:
    """The run id in an output location `<root>/<run_id>/<step>[/<i>...]/<output>`, found as
    the segment before the step (the root may have any depth; run ids are dated)."""
    parts = uri.rstrip("/").split("/")
    for part in reversed(parts):
        if len(part) > 16 and part[:8].isdigit() and part[8] == "-":
            return part
    return ""


def _remove_local(path: Path, keep: set[Path], freed: Freed, dry_run: bool) -> None:
    """Remove `path` (a file or a folder) except the folders in `keep` and what leads to them;
    count what goes."""
    if not path.exists() and not path.is_symlink():
        return
    if path in keep:
        return
    if path.is_dir() and not path.is_symlink() and any(path in k.parents for k in keep):
        for child in sorted(path.iterdir()):
            _remove_local(child, keep, freed, dry_run)
        return
    files, size = _measure(path)
    freed.files += files
    freed.bytes += size
    if dry_run:
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _measure(path: Path) -> tuple[int, int]:
    if path.is_symlink() or not path.is_dir():
        return 1, path.lstat().st_size
    files = size = 0
    for base, _, names in os.walk(path):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(base, name)).st_size
    return files, size


def _remove_remote(
    folder: str, inside: set[str], unneeded: list[str], freed: Freed, dry_run: bool
) -> None:
    """The same on an object store, through fsspec: the run's whole folder when nothing in it
    is needed, else the outputs it recorded that nothing needs (and the strays)."""
    fsspec = importlib.import_module("fsspec")
    fs, path = fsspec.core.url_to_fs(folder)
    targets = [fsspec.core.url_to_fs(uri)[1] for uri in unneeded]
    if not inside:
        targets.insert(0, path)
    for target in dict.fromkeys(targets):
        if not fs.exists(target):
            continue
        found = fs.find(target, withdirs=False) if fs.isdir(target) else [target]
        freed.files += len(found)
        freed.bytes += sum(int(fs.size(f) or 0) for f in found)
        if not dry_run:
            fs.rm(target, recursive=True)


def age_seconds(text: str) -> float:
    """`30d`, `12h`, `90m`, `2w`, `45s` -> seconds (RunError otherwise)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    number, unit = text[:-1], text[-1:]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in units or value < 0:
        raise RunError(f"--older-than {text!r}: write a number and a unit: 30d, 12h, 90m, 2w")
    return value * units[unit]


def now() -> float:
    """The current time (one place, so tests can move it)."""
    return time.time()
