"""The fork executor: each step attempt runs in a forked warm worker, under the run's supervisor.

`prepare` imports the pipeline's modules and then forks the run's supervisor
(`local.supervisor`), so every worker it forks starts warm: a step costs a fork instead of a
fresh interpreter. The worker calls the shared runtime (`pipec.backends.runtime.main`) with the
same arguments a remote engine would pass, so inputs and outputs go through the artifact store
exactly as elsewhere (`local.worker`). When an attempt ends, runs out of time or is stopped, or
when the runner dies (even by SIGKILL), every process it started is killed, including those in
sessions of their own.

This side speaks to the supervisor through two pipes: start, stop and preload requests out,
its reports in. A worker reports the end of its attempt on a third pipe, straight to this side
(the supervisor reports only the ends of workers that could not). Timeouts are kept here (a stop
request at the deadline).

It also learns what the steps import (`local.learning`, policy in `local.preload`): the modules
a component was seen to import in earlier runs are preloaded in the supervisor before its first
fork, and within a run, those the first step of a component imported are preloaded before the
next workers are forked. A supervisor that a preload left with threads forks nothing more: the
attempts it refuses start under a new supervisor.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import pickle
import select
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipec.backends.local import preload, supervisor
from pipec.backends.local.learning import Learner
from pipec.backends.local.worker import Attempt, run_attempt, stand_by
from pipec.backends.runner.executor import Exit, Launch
from pipec.backends.runner.plan import Plan
from pipec.backends.runner.results import RunError
from pipec.backends.runtime import invocation, load_function, returns

LOST = -signal.SIGKILL
"""The exit code of an attempt whose supervisor died under it."""


@dataclass(eq=False)
class StepProcess:
    """A started attempt, known by its token to the supervisor that runs it."""

    token: int
    deadline: float | None
    timeout: float | None
    launch: Launch
    attempt: Attempt
    link: _Supervisor
    timed_out: bool = False
    ended: bool = False

    def start_request(self) -> tuple[str, int, bytes, str]:
        """The supervisor's start request: the attempt is pickled here, once, and handed to the
        worker as it is (the supervisor never unpickles it)."""
        payload = pickle.dumps(self.attempt, protocol=pickle.HIGHEST_PROTOCOL)
        return ("start", self.token, payload, self.attempt.log_path)


class _Supervisor:
    """The runner's end of a supervisor: its pid, the request and event pipes, the pipe its
    workers report their ends on, and the preloads asked of it (answered in order)."""

    def __init__(self, others: Sequence[_Supervisor] = ()) -> None:
        """Fork a supervisor; it closes the runner's ends of `others`' pipes (else an older
        supervisor would never see end of file on its requests)."""
        to_supervisor, requests = os.pipe()
        events, to_runner = os.pipe()
        exits, workers_to_runner = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the supervisor, which never returns
            try:
                for fd in (requests, events, exits, *(f for o in others for f in o.fds())):
                    with contextlib.suppress(OSError):
                        os.close(fd)
                supervisor.serve(to_supervisor, to_runner, workers_to_runner, run_attempt, stand_by)
            finally:
                os._exit(1)
        for fd in (to_supervisor, to_runner, workers_to_runner):
            os.close(fd)
        for fd in (requests, events, exits):
            os.set_blocking(fd, False)
        self.pid, self.requests, self.events, self.exits = pid, requests, events, exits
        self.inbox = bytearray()
        self.exit_inbox = bytearray()
        self.gone = False
        self.retired = False  # a preload left it with threads: it forks nothing more
        self.asked: set[str] = set()  # modules it was asked to preload
        self.batches: list[list[str]] = []  # preloads not answered yet, oldest first

    def fds(self) -> tuple[int, int, int]:
        """The runner's ends of its pipes."""
        return self.requests, self.events, self.exits

    def preload(self, modules: Sequence[str], cwd: str) -> None:
        """Ask it to import those of `modules` it was not asked to before."""
        fresh = [m for m in modules if m not in self.asked]
        if fresh and not self.retired:
            self.asked.update(fresh)
            self.batches.append(fresh)
            self.send(("preload", fresh, cwd))

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
        if not self.gone:
            data, self.gone = _drain(self.events)
            self.inbox += data

    def ended(self) -> list[tuple[str, int, int]]:
        """The `("exit", token, code)` reports its workers wrote since the last call."""
        self.exit_inbox += _drain(self.exits)[0]
        size = supervisor.EXIT_RECORD.size
        whole = len(self.exit_inbox) - len(self.exit_inbox) % size
        found = [
            ("exit", token, code)
            for token, code in supervisor.EXIT_RECORD.iter_unpack(self.exit_inbox[:whole])
        ]
        del self.exit_inbox[:whole]
        return found

    def close(self) -> None:
        """Close its pipes (the supervisor sees the end of its requests, or a broken pipe if it
        was reporting, ends what is left and exits); reap it."""
        for fd in (self.events, self.requests, self.exits):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _drain(fd: int) -> tuple[bytes, bool]:
    """What can be read from non-blocking `fd` now, and whether it is at its end."""
    data = bytearray()
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return bytes(data), False
        if not chunk:
            return bytes(data), True
        data += chunk


class ForkExecutor:
    """Runs each step attempt in a worker forked by the run's supervisor (see the module
    docstring). `preload=False` turns learned imports off (`local.preload`)."""

    def __init__(self, preload: bool = True) -> None:
        self._preload = preload
        self._links: list[_Supervisor] = []  # the last one takes new attempts unless retired
        self._learner: Learner | None = None
        self._cwd = os.getcwd()
        self._tokens = itertools.count(1)
        self._running: dict[int, StepProcess] = {}
        self._ended: dict[int, int] = {}
        self.preload_refused: str | None = "not prepared"
        """Why nothing is preloaded in this run (None: preloading applies)."""

    def prepare(self, plan: Plan, project_root: Path) -> None:
        """Import the components' modules, then fork the supervisor, so each step starts warm,
        and ask it to preload what the components were seen to import before. A module that is
        not there at all stops the run before it starts; one that fails to import (an error in
        it, a dependency it lacks) fails in its step, with the traceback in the step's log."""
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
        self._cwd = root
        invocation.warm_up()  # every worker parses its step's command line with it
        for component in {s.component.target: s.component for s in plan.steps.values()}.values():
            # What each step's outputs are declared as, worked out once here for every worker.
            with contextlib.suppress(Exception):  # a step that cannot load fails in its step
                returns.declare(load_function(component.target), component.returns)
        self.preload_refused = preload.refusal(plan, self._preload)
        if self.preload_refused is None:
            from pipec.backends.runner.runs import open_metadata

            self._learner = Learner(plan, open_metadata(project_root))
        self._current()

    def _current(self) -> _Supervisor:
        """The supervisor that takes new attempts (a new one if there is none, it died, or a
        preload left it with threads), warmed with what is known to be worth preloading."""
        link = self._links[-1] if self._links else None
        if link is None or link.gone or link.retired:
            link = _Supervisor(self._links)
            self._links.append(link)
            if self._learner is not None:
                link.preload(self._learner.preloadable(), self._cwd)
        return link

    def start(self, launch: Launch) -> StepProcess:
        """Ask the supervisor to fork a worker for the attempt; return at once."""
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        timeout = launch.timeout
        deadline = time.monotonic() + timeout if timeout else None
        token = next(self._tokens)
        report = self._learner.report_path(token, launch) if self._learner else None
        link = self._current()
        if link.batches:  # it forks this worker once it has imported those: the clock starts then
            deadline = None
        attempt = Attempt.of(launch, report)
        process = StepProcess(token, deadline, timeout, launch, attempt, link)
        self._running[token] = process
        link.send(process.start_request())
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
        """Collect what the supervisors report within `timeout` seconds: attempts' ends,
        preloads done, attempts refused."""
        links = [link for link in self._links if not link.gone]
        if not links and not self._links:
            time.sleep(timeout)
            return
        if links:
            with contextlib.suppress(InterruptedError):
                select.select(
                    [fd for link in links for fd in (link.exits, link.events)], [], [], timeout
                )
        warm: list[str] = []
        for link in list(self._links):
            # The workers' own reports first: the supervisor's, read next, may repeat one of
            # them (a worker that died after writing it), and a repeat is dropped.
            reports = link.ended()
            link.read()
            for message in [*reports, *supervisor.unframe(link.inbox)]:
                warm += self._handle(link, message)
            if link.gone:  # it died: what it was running is lost (its workers die with it)
                for token, process in self._running.items():
                    if process.link is link:
                        self._ended.setdefault(token, LOST)
        if warm and self._learner is not None:
            self._current().preload(warm, self._cwd)
        self._drop_idle()

    def _handle(self, link: _Supervisor, message: tuple[object, ...]) -> list[str]:
        """One report of `link`; return modules learned that may now be preloaded."""
        match message:
            case ("exit", int() as token, int() as code):
                if token not in self._running or token in self._ended:
                    return []  # reported already (by its worker, then by the supervisor)
                self._ended[token] = code
                process = self._running.get(token)
                if self._learner is not None and process and process.attempt.report:
                    return self._learner.ended(token, process.launch)
            case ("preloaded", list(), int() as threads):
                batch = link.batches.pop(0) if link.batches else []
                if not link.batches:  # the attempts it held back are forked now
                    now = time.monotonic()
                    for process in self._running.values():
                        if process.link is link and process.timeout and process.deadline is None:
                            process.deadline = now + process.timeout
                if threads > 1:
                    link.retired = True
                    if self._learner is not None:
                        self._learner.refuse(batch, threads)
            case ("refused", int() as token):
                process = self._running.get(token)
                if process is not None:
                    process.link = self._current()
                    if process.link.batches:
                        process.deadline = None  # set once its preload is done
                    elif process.timeout:
                        process.deadline = time.monotonic() + process.timeout
                    process.link.send(process.start_request())
            case _:
                pass
        return []

    def _drop_idle(self) -> None:
        """Let go of retired supervisors that run nothing any more."""
        busy = {id(p.link) for p in self._running.values() if not p.ended}
        for link in self._links[:-1]:
            if (link.retired or link.gone) and id(link) not in busy:
                link.close()
                self._links.remove(link)

    def kill(self, handle: StepProcess) -> None:
        """Stop an attempt: the supervisor kills the step and everything it started. Nothing to
        do once the attempt ended: its worker ended its tree before it exited."""
        if handle.ended or handle.link.gone:
            return
        handle.link.send(("stop", handle.token))

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
        """Let the supervisors go (each kills whatever is left) and reap them."""
        for link in self._links:
            link.close()
        self._links = []
        if self._learner is not None:
            self._learner.close()
            self._learner = None
