"""Writing a bundle to disk so that every file appears whole or not at all.

Used by `pipec compile -o DIR` and by submitters that drop files where an engine watches (a DAGs
folder): a reader must never see half a file. The temporary name is hidden and ends in `.tmp`,
which neither Airflow's DAG processor nor most watchers pick up.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pipec.backends.base import Bundle


def write_files(bundle: Bundle, folder: Path) -> list[Path]:
    """Write every file of `bundle` under `folder` (temp file + rename); return their paths."""
    written: list[Path] = []
    folder.mkdir(parents=True, exist_ok=True)
    for rel, text in sorted(bundle.items()):
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(target)
    return written
