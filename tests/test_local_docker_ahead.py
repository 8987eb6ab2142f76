"""Which containers `local_docker` makes ahead of their steps, and that each one not taken is
dropped exactly once (the policy in `local_docker/ahead.py`; no engine needed: the container
maker is a stand-in that only names the container)."""

from __future__ import annotations

import threading
from pathlib import Path

from pipec.backends.local_docker.ahead import Ahead, Spare
from pipec.backends.runner import plan as plans
from pipec.backends.runner.plan import Plan
from tests.helpers import prepared
from tests.local_helpers import make_project

SOURCE = """
@step
def first() -> int:
    return 1

@step
def inc(x: int) -> int:
    return x + 1

@step(resources=Resources(gpu=1))
def on_gpu(x: int) -> int:
    return x

@pipeline
def ahead() -> None:
    a = first()
    b = inc(a)
    c = inc(b)
    inc(c)
    on_gpu(a)
    with when(a > 0):
        inc(a)
"""


def _plan(tmp_path: Path) -> Plan:
    ref = make_project(tmp_path, SOURCE)
    pipeline, settings, _ = prepared(
        str(tmp_path / ref), "local_docker", ["image=some-image"], optimize=False
    )
    return plans.build(pipeline, settings)


class Recorder:
    """The stand-in maker and dropper: what was made and dropped, in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.made: list[str] = []
        self.dropped: list[str] = []

    def make(self, spare: Spare) -> None:
        spare.id = f"container-of-{spare.step.id}"
        with self.lock:
            self.made.append(spare.step.id)

    def drop(self, spare: Spare) -> None:
        with self.lock:
            self.dropped.append(spare.step.id)


def test_the_next_steps_of_a_chain_are_made_ahead_and_nothing_speculative(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    steps = plan.steps
    chain = ["first", "inc", "inc_2", "inc_3"]
    assert set(chain) <= steps.keys()
    assert steps["inc"].depends_on == ("first",) and steps["inc_2"].depends_on == ("inc",)
    conditioned = [s.id for s in steps.values() if s.scopes]
    assert conditioned and all(s not in chain for s in conditioned)
    recorder = Recorder()
    ahead = Ahead(plan, recorder.make, recorder.drop, limit=2)
    ahead.launched(steps["first"], first=True)
    # Two ahead, nearest first; not the GPU step, not the one under a condition.
    assert sorted(ahead.spares) == ["inc", "inc_2"]
    taken = ahead.take(steps["inc"])
    assert taken is not None and taken.id == "container-of-inc" and taken.ready.is_set()
    ahead.launched(steps["inc"], first=True)
    assert sorted(ahead.spares) == ["inc_2", "inc_3"]
    assert ahead.take(steps["on_gpu"]) is None
    ahead.close()
    assert sorted(recorder.made) == ["inc", "inc_2", "inc_3"]
    assert sorted(recorder.dropped) == ["inc_2", "inc_3"]  # not taken: dropped once each


def test_a_spare_whose_step_was_passed_over_is_dropped_at_once(tmp_path: Path) -> None:
    """`inc_2` launches while `inc` still has a container ahead: `inc` ended without it (came
    from the cache, say), so that container is dropped and its place goes to the next step."""
    plan = _plan(tmp_path)
    recorder = Recorder()
    ahead = Ahead(plan, recorder.make, recorder.drop, limit=2)
    ahead.launched(plan.steps["first"], first=True)
    assert ahead.take(plan.steps["inc_2"]) is not None
    ahead.launched(plan.steps["inc_2"], first=True)
    assert sorted(ahead.spares) == ["inc_3"]
    ahead.close()
    assert sorted(recorder.dropped) == ["inc", "inc_3"]


def test_a_later_attempt_makes_nothing_ahead(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    recorder = Recorder()
    ahead = Ahead(plan, recorder.make, recorder.drop, limit=2)
    ahead.launched(plan.steps["first"], first=False)
    ahead.close()
    assert recorder.made == [] and recorder.dropped == []
