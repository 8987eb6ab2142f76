"""Containers made ahead: the next steps' containers start while the current step runs.

Starting a container is most of what a trivial step costs the engine (create 20 to 60 ms,
start 400 to 600 ms of a bare `docker run`'s 600 ms on this 2-CPU machine), and in a chain the
runner knows which step comes next long before the scheduler launches it. So when a step's first
attempt starts, the executor starts the containers of the steps that can come next, each on a
thread of its own: steps outside loops and conditions, without GPUs, all of whose inputs (what
they read and run `.after()`) have started or have a container ahead too, at most `LIMIT` at a
time, nearest first. Each is the container that step's first attempt would get (its labels,
limits, mounts and name); its launcher imports the step runtime and waits for its request. Until
the scheduler launches the step it has no command, no environment and no secret; the step's
timeout counts from the request.

A container made ahead that its step does not take (the step came from the cache, it runs a
second attempt, its inputs failed, the run is stopped) is dropped: its stdin closed (so its
launcher ends) and the container removed, at the latest by `close`, which waits for every
container still being made before the run's containers are swept by label.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipec.backends.runner.plan import Plan, PlanStep

LIMIT = 3
"""At most this many containers ahead of their steps at once: on this 2-CPU machine a 20-step
chain took 0.67x to 0.88x the wall time with 3 as with 2 (six alternating runs, load 5 to 7);
4 and 6 measured no better than 3."""


@dataclass(eq=False)
class Spare:
    """A container made ahead for the first attempt of `step`. `ready` is set once the maker
    has returned (`id` and `stream` are None when it failed)."""

    step: PlanStep
    image: str
    ready: threading.Event = field(default_factory=threading.Event)
    id: str | None = None
    stream: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    made: bool = False
    unwanted: bool = False


class Ahead:
    """The containers made ahead of one run (see the module docstring). `make(spare)` creates,
    attaches and starts a spare's container (on the spare's own thread); `drop(spare)` gets rid
    of one nobody will take (called once per such spare, after `make` returned)."""

    def __init__(
        self,
        plan: Plan,
        make: Callable[[Spare], None],
        drop: Callable[[Spare], None],
        limit: int = LIMIT,
    ) -> None:
        self.plan = plan
        self.make = make
        self.drop = drop
        self.limit = limit
        self.started: set[str] = set()
        """Steps whose first attempt started or has a container ahead."""
        self.spares: dict[str, Spare] = {}
        """Containers ahead not taken yet, by step."""
        self.made: list[Spare] = []

    def launched(self, step: PlanStep, first: bool) -> None:
        """`step` is being launched (`first`: its first attempt, outside any loop): drop what
        was made for its inputs (they ended without their container) and make the next ones."""
        for passed in _inputs(step) & self.spares.keys():
            self._unwanted(self.spares.pop(passed))
        if not first:
            return
        self.started.add(step.id)
        waiting = [s for s in self.plan.steps.values() if self._candidate(s)]
        while len(self.spares) < self.limit:
            found = next((s for s in waiting if self._due(s)), None)
            if found is None:
                return
            image = found.image or self.plan.settings.image
            assert image is not None  # _candidate
            spare = Spare(found, image)
            self.started.add(found.id)
            self.spares[found.id] = spare
            self.made.append(spare)
            threading.Thread(target=self._make, args=(spare,), daemon=True).start()

    def take(self, step: PlanStep) -> Spare | None:
        """The container made ahead for `step` once it is ready, or None. A spare taken is the
        caller's to use or remove."""
        spare = self.spares.pop(step.id, None)
        if spare is not None:
            spare.ready.wait()
        return spare

    def close(self) -> None:
        """Drop every container not taken, and return once all are made and dropped."""
        for spare in self.spares.values():
            self._unwanted(spare)
        self.spares.clear()
        for spare in self.made:
            spare.ready.wait(timeout=120)

    # ------------------------------------------------------------------------------- helpers

    def _candidate(self, step: PlanStep) -> bool:
        return (
            step.id not in self.started
            and not (step.loops or step.scopes or step.resources.gpu)
            and (step.image or self.plan.settings.image) is not None
            and bool(_inputs(step))  # steps without inputs start with the run: nothing to win
        )

    def _due(self, step: PlanStep) -> bool:
        return step.id not in self.started and _inputs(step) <= self.started

    def _make(self, spare: Spare) -> None:
        try:
            self.make(spare)
        finally:
            with spare.lock:  # dropped exactly once: here, or by _unwanted
                spare.made = True
                drop = spare.unwanted
            if drop:
                self.drop(spare)
            spare.ready.set()

    def _unwanted(self, spare: Spare) -> None:
        with spare.lock:
            spare.unwanted = True
            drop = spare.made
        if drop:
            self.drop(spare)


def _inputs(step: PlanStep) -> set[str]:
    """What `step` waits for: the nodes it reads and runs `.after()`."""
    return {*step.depends_on, *step.after}
