"""The seam between the scheduler and whatever runs a step: the `Executor` protocol.

The scheduler decides what runs when (dependencies, capacity, retries, caching) and hands an
executor one `Launch` per step attempt: the step runtime's arguments with every placeholder
filled, the environment, the log file, the secret values to mask. The executor decides how the
runtime is started (which interpreter, container or pod), keeps the attempt to its timeout, and
reports how each attempt ended. It never sees the plan's scheduling state, so a new executor
(Docker for `local_docker`, Kubernetes Jobs for `kubernetes`) is one class and the scheduler does
not change.

Today's executors: `pipec.backends.local.fork.ForkExecutor` (a forked warm worker per step).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from pipec.backends.runner.plan import Plan, PlanStep

H = TypeVar("H", bound=Hashable)


@dataclass(frozen=True)
class Launch:
    """One attempt of one step instance.

    `argv` are the step runtime's arguments (what follows `python -m pipec.backends.runtime`);
    `env` is added to the executor's own environment (the step's env, its secrets and the
    `PIPEC_*` variables); stdout and stderr go to the end of `log_path` with every value in
    `masks` replaced; `cwd` is the project root. `step` is the plan's step, for what only some
    executors read (resources, a container name); `image` is its image or the target's default;
    `gpus` are the GPU devices it was given (also in `env` as `CUDA_VISIBLE_DEVICES`, for an
    executor whose steps see the machine's devices as they are).
    """

    step: PlanStep
    label: str
    attempt: int
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    cwd: Path
    masks: Sequence[str] = ()
    image: str | None = None
    gpus: tuple[str, ...] = ()

    @property
    def timeout(self) -> float | None:
        """Seconds the attempt may run (None: no limit)."""
        return self.step.timeout


@dataclass(frozen=True)
class Exit:
    """How an attempt ended: its exit code (0 succeeded; negative: killed by that signal) and,
    when the executor stopped it for running too long, the timeout it ran out of."""

    code: int
    timed_out_after: float | None = None


class Executor(Protocol[H]):
    """Starts step attempts and reports their ends; `H` is its handle of one running attempt.

    One executor serves one run: `prepare` is called before the run is recorded (or, on resume,
    continued), `close` after the last attempt ended (also when the run is interrupted).
    """

    def prepare(self, plan: Plan, project_root: Path) -> None:
        """Get ready for a run of `plan` (warm caches, pull images, ...). Raise `RunError`
        (`runner.results`) when no step could run at all (a module that is not there, an
        image that does not exist): the run then stops before it starts, with that message."""

    def start(self, launch: Launch) -> H:
        """Start an attempt and return at once."""
        ...

    def wait(self, handles: Sequence[H], timeout: float) -> list[tuple[H, Exit]]:
        """Wait up to `timeout` seconds for any of `handles` to end; return each one that did.
        An attempt past its timeout is stopped here and reported with `timed_out_after`."""
        ...

    def kill(self, handle: H) -> None:
        """Stop an attempt and everything it started; `wait` then reports its end. The scheduler
        also calls it once an attempt has ended, to stop whatever the step left behind."""

    def describe_exit(self, exit: Exit) -> str:
        """Words for how a failed attempt ended, for the run summary."""
        ...

    def close(self) -> None:
        """The run is over: release what `prepare` took."""
