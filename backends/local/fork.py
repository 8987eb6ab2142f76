"""The fork executor: each step attempt runs in a forked warm worker, under the run's supervisor.

`prepare` imports the pipeline's modules and then forks the run's supervisor
(`local.supervisor`), so every worker it forks starts warm: a step costs a fork instead of a
fresh interpreter. The worker calls the shared runtime (`pipec.backends.runtime.main`) with the
same arguments a remote engine would pass, so inputs and outputs go through the artifact store
exactly as elsewhere (`local.worker`). When an attempt ends, runs out of time or is stopped, or
when the runner dies (even by SIGKILL), every process it started is killed, including those in
sessions of their own.

This side speaks to the supervisor through two pipes: start and stop requests out, attempt ends
in. Timeouts are kept here (a stop request at the deadline).
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import select
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipec.backends.local import supervisor
from pipec.backends.local.worker import run_attempt
from pipec.backends.runner.executor import Exit, Launch
from pipec.backends.runner.plan import Plan
from pipec.backends.runner.results import RunError

LOST = -signal.SIGKILL
"""The exit code of an attempt whose supervisor died under it."""


@dataclass(eq=False)
class StepProcess:
    """A started attempt, known by its token to the supervisor."""

    token: int
    deadline: float | None
    timeout: float | None
    timed_out: bool = False
    ended: bool = False


class _Supervisor:
    """The runner's end of the supervisor: its pid and the two pipes."""

    def __init__(self) -> None:
        to_supervisor, requests = os.pipe()
        events, to_runner = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the supervisor, which never returns
            try:
                os.close(requests)
                os.close(events)
                supervisor.serve(to_supervisor, to_runner, run_attempt)
            finally:
                os._exit(1)
        os.close(to_supervisor)
        os.close(to_runner)
        os.set_blocking(requests, False)
        os.set_blocking(events, False)
        self.pid, self.requests, self.events = pid, requests, events
        self.inbox = bytearray()
        self.gone = False

    def send(self, message: object) -> None:
        """Write one request, reading reports meanwhile so that neither side waits for the
        other forever."""
        data = memoryview(supervisor.frame(message))
        while data and not self.gone:
            writable = select.select([self.events], [self.requests], [])[1]
            self.read()
            if writable:
                try:
                    data = data[os.write(self.requests, data) :]
                except (BlockingIOError, BrokenPipeError):
                    continue

    def read(self) -> None:
        """Move what the supervisor has written into the inbox."""
        while not self.gone:
            try:
                chunk = os.read(self.events, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                self.gone = True
                return
            self.inbox += chunk

    def close(self) -> None:
        """Close both pipes (the supervisor sees the end of its requests, or a broken pipe if it
        was reporting, ends what is left and exits); reap it."""
        for fd in (self.events, self.requests):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


class ForkExecutor:
    """Runs each step attempt in a worker forked by the run's supervisor (see the module
    docstring)."""

    def __init__(self) -> None:
        self._supervisor: _Supervisor | None = None
        self._tokens = itertools.count(1)
        self._running: dict[int, StepProcess] = {}
        self._ended: dict[int, int] = {}

    def prepare(self, plan: Plan, project_root: Path) -> None:
        """Import the components' modules, then fork the supervisor, so each step starts warm. A
        module that is not there at all stops the run before it starts; one that fails to import
        (an error in it, a dependency it lacks) fails in its step, with the traceback in the
        step's log."""
        root = str(project_root)
        if root not in sys.path:
            sys.path.insert(0, root)
        for module in sorted({step.component.module for step in plan.steps.values()}):
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name == module or module.startswith(f"{exc.name}."):
                    raise RunError(
                        f"the steps' module {module!r} cannot be imported from {root}: {exc}"
                    ) from None
            except Exception:
                continue
        self._supervisor = _Supervisor()

    def start(self, launch: Launch) -> StepProcess:
        """Ask the supervisor to fork a worker for the attempt; return at once."""
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self._supervisor is None or self._supervisor.gone:
            self._supervisor = _Supervisor()  # first use without prepare, or it died
        timeout = launch.timeout
        deadline = time.monotonic() + timeout if timeout else None
        process = StepProcess(token=next(self._tokens), deadline=deadline, timeout=timeout)
        self._running[process.token] = process
        self._supervisor.send(("start", process.token, launch))
        return process

    def wait(
        self, handles: Sequence[StepProcess], timeout: float
    ) -> list[tuple[StepProcess, Exit]]:
        """Wait up to `timeout` seconds (less when a deadline comes first) for any of `handles`
        to end; stop the attempts that ran out of time (reported on a later call)."""
        now = time.monotonic()
        deadlines = [p.deadline for p in handles if p.deadline is not None and not p.timed_out]
        until = min([now + max(0.0, timeout), *deadlines])
        if not any(p.token in self._ended for p in handles):
            self._receive(max(0.0, until - now))
        now = time.monotonic()
        for process in handles:
            if process.deadline is not None and now >= process.deadline and not process.timed_out:
                process.timed_out = True
                self.kill(process)
        found = []
        for process in handles:
            code = self._ended.pop(process.token, None)
            if code is not None:
                process.ended = True
                self._running.pop(process.token, None)
                timed_out = process.timeout if process.timed_out else None
                found.append((process, Exit(code, timed_out_after=timed_out)))
        return found

    def _receive(self, timeout: float) -> None:
        """Collect the attempts' ends the supervisor reports within `timeout` seconds."""
        link = self._supervisor
        if link is None:
            time.sleep(timeout)
            return
        if not link.gone:
            with contextlib.suppress(InterruptedError):
                select.select([link.events], [], [], timeout)
            link.read()
        for _, token, code in supervisor.unframe(link.inbox):
            self._ended[token] = code
        if link.gone:  # it died: what it was running is lost (its workers die with it)
            for token in self._running:
                self._ended.setdefault(token, LOST)

    def kill(self, handle: StepProcess) -> None:
        """Stop an attempt: the supervisor kills the step and everything it started. Nothing to
        do once the attempt ended: its worker ended its tree before it exited."""
        if handle.ended or self._supervisor is None:
            return
        self._supervisor.send(("stop", handle.token))

    def describe_exit(self, exit: Exit) -> str:
        """Human words for an exit."""
        if exit.timed_out_after is not None:
            return f"timed out after {exit.timed_out_after:g}s (its processes were killed)"
        if exit.code >= 0:
            return f"exit code {exit.code}"
        try:
            name = signal.Signals(-exit.code).name
        except ValueError:
            name = f"signal {-exit.code}"
        return f"killed by {name}"

    def close(self) -> None:
        """Let the supervisor go (it kills whatever is left) and reap it."""
        if self._supervisor is not None:
            self._supervisor.close()
            self._supervisor = None
