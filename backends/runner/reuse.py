"""Whether a step instance needs to run: results kept on resume, and the step cache.

On resume, a step instance that finished in the run keeps its result (when its outputs still
exist); the run may be resumed only while the steps' code is unchanged. Otherwise a step instance
is reused from the cache when its code (`component.code_hash`: the function and what it uses from
its module), image, environment variables, parameter values and the content hashes of its inputs
all match an earlier successful execution whose outputs still exist. The key and its parts are
`runtime.cache_key`'s, shared with the runtime's own cache for engines that have none.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from pipec.backends import runtime
from pipec.backends.runner.expansion import CACHED, OK
from pipec.backends.runner.metadata import MetadataStore
from pipec.backends.runner.plan import Plan, PlanStep
from pipec.backends.runner.records import RunRecord, StepRecord
from pipec.backends.runner.results import RunError
from pipec.backends.runtime import store
from pipec.backends.runtime.cache_key import explain_miss
from pipec.ir.code import code_hash


class Reuse:
    """Answers, for one run, whether a step instance's result already exists."""

    def __init__(
        self,
        run: RunRecord,
        metadata: MetadataStore,
        *,
        no_cache: bool,
        previous: Mapping[tuple[str, str], StepRecord],
    ) -> None:
        self.run = run
        self.metadata = metadata
        self.no_cache = no_cache
        self.previous = previous

    def kept(self, step_id: str, iteration: str) -> StepRecord | None:
        """On resume: the record of a step instance that already finished in this run (and whose
        outputs still exist)."""
        earlier = self.previous.get((step_id, iteration))
        if earlier is None or earlier.status not in OK:
            return None
        if not all(store.exists(a.uri) for a in earlier.artifacts.values()):
            return None
        return earlier

    def cached(self, step: PlanStep, record: StepRecord) -> bool:
        """Fill `record` from the cache and return True on a hit; on a miss, say why in
        `record.reason` and return False. `record` carries its cache key already."""
        assert record.cache_key is not None and record.cache_parts is not None
        if not step.cache:
            record.reason = "not cached: cache=False on this step"
            return False
        if self.no_cache:
            record.reason = "not cached: --no-cache"
            return False
        if step.component.unhashed:
            # Its code hash cannot see a change in these, so a hit could be stale: run it.
            record.reason = (
                f"not cached: the step uses {', '.join(step.component.unhashed)}, which pipec "
                "cannot hash by value"
            )
            return False
        hit = self.metadata.find_cached(step.id, record.cache_key)
        if hit is not None and all(store.exists(a.uri) for a in hit.artifacts.values()):
            record.status, record.cached_from = CACHED, hit.cached_from or hit.run_id
            record.reason = f"cached from run {record.cached_from}"
            record.artifacts = dict(hit.artifacts)
            record.started_at = record.ended_at = time.time()
            return True
        earlier = self.metadata.previous_execution(
            self.run.pipeline_id, step.id, record.iteration, self.run.run_id
        )
        why = explain_miss(record.cache_parts, earlier.cache_parts if earlier else None)
        record.reason = f"not cached: {why}"
        return False


def check_code_unchanged(plan: Plan, run_id: str, project_root: Path) -> None:
    """Refuse to resume when a step's code changed since the run started: the finished steps ran
    the old code, and the rest would run the new code under the old code's cache key."""
    changed = set()
    for step in plan.steps.values():
        component = step.component
        try:
            func = runtime.load_function(component.target, str(project_root))
            now = code_hash(getattr(func, "func", func), component.module, component.function)
        except Exception:  # gone, renamed or broken: it changed all the same
            now = None
        if now != component.code_hash:
            changed.add(component.target)
    if changed:
        raise RunError(
            f"the code of {', '.join(sorted(changed))} changed since run {run_id} started; "
            "resuming would mix two versions. Start a new run (unchanged steps come from the cache)"
        )
