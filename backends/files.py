"""Writing a bundle to disk so that every file appears whole or not at all.

Used by `pipec compile -o DIR` and by submitters that drop files where an engine watches (a DAGs
folder): a reader must never see half a file. The temporary name is hidden and ends in `.tmp`,
which neither Airflow's DAG processor nor most watchers pick up. Files get the permissions the
user's umask gives new files (the engine often reads them as another user).

`write_output` is `pipec compile -o DIR`: it also removes the files an earlier compile into the
same folder wrote and this one does not (a `schedule.json` left behind keeps scheduling a
pipeline that no longer has a schedule). It knows its own files from a manifest it keeps in the
folder (`MANIFEST`) and never touches any other file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from pipec.backends.base import Bundle

MANIFEST = ".pipec-output.json"


def write_files(bundle: Bundle, folder: Path) -> list[Path]:
    """Write every file of `bundle` under `folder` (temp file + rename); return their paths."""
    written: list[Path] = []
    folder.mkdir(parents=True, exist_ok=True)
    mode = 0o666 & ~_umask()
    for rel, text in sorted(bundle.items()):
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
            # mkstemp makes the file 0600; a DAG file read by the Airflow user needs the usual
            # permissions of a new file.
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(target)
    return written


def write_output(bundle: Bundle, folder: Path) -> tuple[list[Path], list[Path]]:
    """`pipec compile -o`: write the bundle, then remove what an earlier compile into `folder`
    wrote that this bundle no longer has. Returns (written, removed)."""
    earlier = _manifest(folder)
    written = write_files({**bundle, MANIFEST: _manifest_text(bundle)}, folder)
    removed: list[Path] = []
    for rel in sorted(earlier - set(bundle)):
        stale = folder / rel
        if stale.is_file() and not stale.is_symlink():
            stale.unlink()
            removed.append(stale)
            _remove_empty_parents(stale.parent, folder)
    return [p for p in written if p.name != MANIFEST], removed


def _manifest_text(bundle: Bundle) -> str:
    return json.dumps({"files": sorted(bundle)}, indent=2) + "\n"


def _manifest(folder: Path) -> set[str]:
    """The files an earlier `write_output` wrote here (none when there is no readable manifest:
    then nothing is ever removed)."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list):
        return set()
    # Only plain relative paths inside the folder: a tampered manifest removes nothing outside.
    return {
        f
        for f in files
        if isinstance(f, str) and f and not Path(f).is_absolute() and ".." not in Path(f).parts
    }


def _remove_empty_parents(start: Path, stop: Path) -> None:
    current = start
    while current != stop and stop in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
