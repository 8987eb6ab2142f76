"""The step context: what a running step may know about itself, `pipec.context()`.

Every target hands the step runtime the same environment variables, each filled by the engine's
own means (the local runner directly, Airflow through Jinja, GitHub through expressions, KFP
through placeholders in `--context`); a target that cannot know one leaves it out, and the field
is None there (kubeflow and vertex: the attempt of a step KFP retries; docs/targets/kubeflow.md
says why). The conformance suite checks that every target
that runs here gives the local target's values (tests/conformance/test_run.py):

    PIPEC_RUN_ID      the run (local run id, Airflow run_id, GitHub run id, ...)
    PIPEC_PIPELINE    the pipeline's name
    PIPEC_STEP_ID     the step's id in the pipeline
    PIPEC_ITERATION   the foreach iteration: dot-separated indexes, outermost first ("" outside)
    PIPEC_ATTEMPT     1 for the first attempt, 2 for the first retry, ...

An engine that can render its values into a command line but not into the environment (KFP)
gives them as `--context KEY=VALUE` (runtime/invocation.py); the runtime exports them as these
variables before the step starts (`export`), so this module reads one place on every target.

`log_metric` / `log_metadata` write one line `pipec: {JSON}` to the step's log, which every
engine keeps; the local targets read them back from there (`pipec runs show`). A line in the log
is the one channel that works the same in a forked process, a container and a pod.

`path(name)` gives a file name in a folder the runtime owns for this step attempt: a `Path`
output inside it is moved into the artifact store rather than copied, and the folder is removed
when the step ends, whatever it returned.

The metrics a process logged are also kept (`logged_metrics`): on KFP engines the runtime lists
them as the metadata of the step's `system.Metrics` artifact, which KFP's UI shows.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_CURRENT: StepContext | None = None
_METRICS: dict[str, float] = {}

LOG_PREFIX = "pipec: "
"""How a logged metric or metadata line starts in the step's log (then one JSON object)."""


class NoStepContext(RuntimeError):
    """`pipec.context()` called where no step is running."""


@dataclass
class StepContext:
    """What a running step knows about itself (see the module docstring)."""

    run_id: str | None
    pipeline: str | None
    step: str | None
    iteration: tuple[int, ...] | None
    attempt: int | None
    _scratch: Path | None = field(default=None, repr=False)
    _scratch_parent: str | None = field(default=None, repr=False)

    def path(self, name: str) -> Path:
        """A path named `name` in this attempt's own folder (created on first use, removed when
        the step ends). Return it (as a `Path`) to make it an output without a copy."""
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"context().path() takes a plain file name, not {name!r}")
        if self._scratch is None:
            parent = self._scratch_parent
            if parent is None:
                import tempfile  # only when a step asks (see the runtime's imports test)

                self._scratch = Path(tempfile.mkdtemp(prefix="pipec-step-"))
            else:
                # Named like the store's staging folders, so a killed step's leftover is
                # removed by the same cleanup (`store.remove_staging`).
                folder = Path(parent) / f".context.tmp-{os.getpid()}-{os.urandom(4).hex()}"
                folder.mkdir(parents=True)
                self._scratch = folder
        return self._scratch / name

    def log_metric(self, name: str, value: float) -> None:
        """Record a number under `name` for this step (shown by `pipec runs show`)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"log_metric({name!r}, ...) takes a number, not {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"log_metric({name!r}, {value}): the value must be finite")
        self._record({"metric": name, "value": value})
        _METRICS[name] = value

    def log_metadata(self, **values: Any) -> None:
        """Record JSON-able key/values for this step (shown by `pipec runs show`)."""
        try:
            json.dumps(values, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"log_metadata takes JSON values: {exc}") from None
        self._record({"metadata": values})

    def in_scratch(self, path: Path) -> bool:
        """Whether `path` lies in this attempt's own folder (then it may be moved, not copied)."""
        if self._scratch is None:
            return False
        try:
            Path(path).resolve().relative_to(self._scratch.resolve())
        except ValueError:
            return False
        return True

    def _record(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, sort_keys=True, allow_nan=False)
        print(f"{LOG_PREFIX}{line}", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Remove the attempt's own folder."""
        if self._scratch is not None:
            import shutil

            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


def from_environment(scratch_parent: str | None = None) -> StepContext:
    """The context the target handed over in the environment."""
    env = os.environ
    iteration_text = env.get("PIPEC_ITERATION")
    iteration: tuple[int, ...] | None = None
    if iteration_text is not None:
        parts = [p for p in iteration_text.replace("/", ".").split(".") if p]
        iteration = tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else None
    attempt_text = env.get("PIPEC_ATTEMPT", "")
    return StepContext(
        run_id=env.get("PIPEC_RUN_ID") or None,
        pipeline=env.get("PIPEC_PIPELINE") or None,
        step=env.get("PIPEC_STEP_ID") or None,
        iteration=iteration,
        attempt=int(attempt_text) if attempt_text.isdigit() else None,
        _scratch_parent=scratch_parent,
    )


def export(values: dict[str, str], names: dict[str, str]) -> None:
    """Put context values given on the command line (key -> value; `names`: key -> variable)
    into this process's environment, where `from_environment` and child processes read them."""
    for key, value in values.items():
        os.environ[names[key]] = value


def logged_metrics() -> dict[str, float]:
    """Every metric logged in this process so far (the last value of each name)."""
    return dict(_METRICS)


def current() -> StepContext:
    """The running step's context (`pipec.context()`)."""
    if _CURRENT is None:
        raise NoStepContext(
            "pipec.context() is only available while a step runs (not at import time, and not "
            "when the step function is called as a plain function)"
        )
    return _CURRENT


def replace(context: StepContext) -> StepContext | None:
    """Make `context` the current one (the runtime, around one step); return the one it
    replaces (a fused chain runs its members inside its own step)."""
    global _CURRENT
    outer, _CURRENT = _CURRENT, context
    return outer


def restore(outer: StepContext | None) -> None:
    """End the current step's context (removing its folder) and bring back `outer`."""
    global _CURRENT
    if _CURRENT is not None:
        _CURRENT.close()
    _CURRENT = outer
