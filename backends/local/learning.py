"""The fork executor's memory of what steps import: which modules to preload, and when.

One `Learner` serves one run. It reads what the plan's components (by code hash) were seen to
import in earlier runs, asks the first worker of each component that has taught nothing yet to
report its imports (`local.preload`), records what it reports in the metadata store, and says
which modules the supervisor has not been asked to preload yet. Policy (what is refused and
why) is in `local.preload`'s docstring.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pipec.backends.local import preload
from pipec.backends.runner.executor import Launch
from pipec.backends.runner.metadata import MetadataStore
from pipec.backends.runner.plan import Plan

THREADS_LEFT = "its step's process still had {} threads after it returned"
THREADED_PRELOAD = "preloading them left the supervisor with {} threads"


class Learner:
    """What one run learns and preloads (see the module docstring)."""

    def __init__(self, plan: Plan, metadata: MetadataStore) -> None:
        self._metadata = metadata
        hashes = [step.component.code_hash for step in plan.steps.values()]
        self._known = metadata.learned_imports(hashes)
        # Components whose first worker reports its imports in this run.
        self._asked: set[str] = set()
        self._reports = Path(tempfile.mkdtemp(prefix="pipec-imports-"))

    def preloadable(self) -> list[str]:
        """Every module the plan's components were seen to import and may be preloaded, in the
        order they were imported (components in code-hash order)."""
        found: dict[str, None] = {}
        for code_hash in sorted(self._known):
            modules, refused = self._known[code_hash]
            if not refused:
                found.update(dict.fromkeys(modules))
        return list(found)

    def report_path(self, token: int, launch: Launch) -> Path | None:
        """Where the worker of attempt `token` reports its step's imports, or None when its
        component already taught them (in this run or an earlier one)."""
        code_hash = launch.step.component.code_hash
        if code_hash in self._known or code_hash in self._asked:
            return None
        self._asked.add(code_hash)
        return self._reports / f"{token}.json"

    def ended(self, token: int, launch: Launch) -> list[str]:
        """The attempt `token` ended: record what its worker reported; return the modules its
        component may have preloaded (empty when it reported nothing or is refused)."""
        code_hash = launch.step.component.code_hash
        report = preload.read_report(self._reports / f"{token}.json")
        if report is None:
            self._asked.discard(code_hash)  # it failed or imported nothing: ask the next one
            return []
        modules, threads = report
        refused = THREADS_LEFT.format(threads) if threads > 1 else ""
        self._metadata.learn_imports(code_hash, modules, refused)
        self._known[code_hash] = (modules, refused)
        return [] if refused else modules

    def refuse(self, modules: Sequence[str], threads: int) -> None:
        """Preloading `modules` left the supervisor with other threads: the components that
        taught any of them are not preloaded again (in this run or later ones)."""
        batch = set(modules)
        for code_hash, (known, refused) in list(self._known.items()):
            if not refused and batch.intersection(known):
                reason = THREADED_PRELOAD.format(threads)
                self._metadata.learn_imports(code_hash, known, reason)
                self._known[code_hash] = (known, reason)

    def close(self) -> None:
        """Remove the reports folder and close the store."""
        shutil.rmtree(self._reports, ignore_errors=True)
        self._metadata.close()
