"""Run outputs as the suite compares them: `step[/i]/output` -> content hash.

Engines that run the pipec step runtime with pipec's artifact store leave a `meta.json` beside
every output (its `hash` covers the data files). Engines that keep a step's value as their own
parameter (kfp.local) hold the value only; `value_hash` stores it the way the runtime would and
takes that hash, so both sides are compared by the same function.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from pipec.backends.runtime import store


def stored_outputs(run_dir: Path) -> dict[str, str]:
    """Every output a run wrote under its run folder (`<root>/<run_id>/`)."""
    found: dict[str, str] = {}
    for meta in sorted(run_dir.rglob(store.META_FILE)):
        key = meta.parent.relative_to(run_dir).as_posix()
        found[key] = json.loads(meta.read_text(encoding="utf-8"))["hash"]
    return found


def value_hash(value: Any) -> str:
    """The hash the artifact store gives `value` when a step returns it."""
    with tempfile.TemporaryDirectory(prefix="pipec-hash-") as scratch:
        meta = store.write(value, str(Path(scratch) / "output"))
    digest: str = meta["hash"]
    return digest
