"""The executor seam: a target that runs steps elsewhere is the local backend with another
executor, and the scheduler hands that executor everything a fresh process needs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pipec.backends.base import RunOptions
from pipec.backends.local import LocalBackend, LocalSettings
from pipec.backends.runner.executor import Executor, Exit, Launch
from pipec.backends.runner.plan import PLACEHOLDER, Plan
from pipec.backends.runtime.invocation import module_args, parse
from tests.helpers import prepared
from tests.local_helpers import make_project

SOURCE = """
@step
def numbers(n: int) -> list[int]:
    return list(range(n))

@step
def square(x: int) -> int:
    return x * x

@step
def total(xs: list[int]) -> int:
    return sum(xs)

@step
def big(t: int) -> str:
    return f"big {t}"

@pipeline
def fan(n: int = 3) -> None:
    with foreach(numbers(n)) as x:
        sq = square(x)
    t = total(collect(sq))
    with when(t > 2):
        big(t)
"""


@dataclass(eq=False)
class _Process:
    popen: subprocess.Popen[bytes]
    log: IO[bytes]


class FreshInterpreterExecutor:
    """`python -m pipec.backends.runtime ARGV` in a new interpreter per attempt: what a container
    executor runs, without the container. (No timeouts: the pipelines here have none.)"""

    def __init__(self) -> None:
        self.launches: list[Launch] = []
        self.calls: list[str] = []

    def prepare(self, plan: Plan, project_root: Path) -> None:
        self.calls.append("prepare")

    def start(self, launch: Launch) -> _Process:
        self.launches.append(launch)
        log = launch.log_path.open("ab")
        popen = subprocess.Popen(
            [sys.executable, *module_args(), *launch.argv],
            cwd=launch.cwd,
            env={**os.environ, **launch.env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return _Process(popen, log)

    def wait(self, handles: Sequence[_Process], timeout: float) -> list[tuple[_Process, Exit]]:
        end = time.monotonic() + timeout
        while True:
            done = [(h, Exit(h.popen.returncode)) for h in handles if h.popen.poll() is not None]
            if done or time.monotonic() >= end:
                for handle, _ in done:
                    handle.log.close()
                return done
            time.sleep(0.005)

    def kill(self, handle: _Process) -> None:
        if handle.popen.poll() is None:
            handle.popen.kill()

    def describe_exit(self, exit: Exit) -> str:
        return f"exit code {exit.code}"

    def close(self) -> None:
        self.calls.append("close")


class FreshInterpreterBackend(LocalBackend):
    """What a `local_docker`-like target amounts to: the local backend, another executor."""

    def __init__(self, settings: LocalSettings, project_root: Path) -> None:
        super().__init__(settings, project_root)
        self.executor = FreshInterpreterExecutor()

    def make_executor(self) -> Executor[Any]:
        return self.executor


def test_another_executor_runs_the_same_pipeline_to_the_same_results(tmp_path: Path) -> None:
    ref = make_project(tmp_path, SOURCE)
    pipeline, _, backend = prepared(str(tmp_path / ref), "local", ["image=python:3.12-slim"])
    options = RunOptions(no_cache=True, view="quiet")
    forked = backend.run(pipeline, {}, options).result
    other = FreshInterpreterBackend(backend.settings, tmp_path)
    fresh = other.run(pipeline, {}, options).result
    assert forked is not None and fresh is not None and forked.ok and fresh.ok
    assert fresh.output("big") == "big 5"
    assert [(s.label, s.status, s.outputs) for s in fresh.steps] == [
        (s.label, s.status, s.outputs) for s in forked.steps
    ]
    launches = other.executor.launches
    assert other.executor.calls == ["prepare", "close"]
    assert sorted(launch.label for launch in launches) == sorted(
        s.label for s in fresh.steps if s.status == "succeeded"
    )
    for launch in launches:
        runtime = parse(launch.argv)  # complete runtime arguments, no placeholder left
        assert not any(PLACEHOLDER.search(arg) for arg in launch.argv)
        assert runtime.component == launch.step.component.target
        assert launch.env["PIPEC_STEP_ID"] == launch.step.id
        assert launch.image == "python:3.12-slim" and launch.cwd == tmp_path
        assert launch.log_path.is_file()
