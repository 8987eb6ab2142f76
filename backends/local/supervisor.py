"""The run's supervisor: one process that starts every step attempt and ends each one's whole tree.

A process group is not enough to stop what a step started: anything that calls `setsid` (the
`setsid` command, `start_new_session=True`, a daemon's double fork) leaves the group, and a
runner killed with SIGKILL cannot kill anything at all. So the fork executor forks, once per run
(after the steps' modules are imported), a supervisor that

* is the *child subreaper* (Linux `PR_SET_CHILD_SUBREAPER`) of everything below it, so no process
  of a step is ever re-parented to init, whatever session or group it moved to;
* forks one worker per attempt on the runner's request (a fork of a warm process, as before).
  Each worker is itself a subreaper: while it lives, every process its step started stays below
  it, so a tree belongs to exactly one attempt. When the step returns, the worker ends its own
  tree (`end_tree`) before it exits;
* on a stop request (a timeout, an interrupt) freezes the attempt's tree with SIGSTOP until no
  new process appears, then SIGKILLs it (`sweep`): nothing can fork its way out;
* treats any child that is not a live worker as left behind by a worker that died without
  ending its tree (SIGKILL, `os._exit`, a crash) and sweeps it;
* when the runner goes away (end of file on its request pipe, or the parent-death signal: also
  after `kill -9` of the runner) sweeps everything below it and exits.

Messages on the request and event pipes are length-prefixed pickles: `("start", token, pickled
Attempt, log path)`, `("stop", token)` and `("preload", modules, cwd)` in; `("exit", token,
code)`, `("preloaded", modules, threads)` and `("refused", token)` out. A worker whose step
returned reports its own end to the runner, on a third pipe (`report_exit`: a fixed-size
`(token, code)` record, written whole); the supervisor reports the end of a worker that could not
(killed, crashed, or the write failed) on the event pipe, when it finds the worker gone. The
worker of the next attempt is forked ahead (`Spare`), while the current one runs, so a start
request costs a write on a pipe instead of a fork.
A preload imports library modules here so that the workers forked after it start with them
(`local.preload`); when the supervisor then has other threads than its own (counted as a fork
sees them), it is no longer fit to fork: it refuses every later start, and the executor starts
those attempts under a new supervisor. Where there is no subreaper or /proc (not Linux), a stop
kills the worker's process group only; processes that left the group are not reached there
(`docs/guarantees.md`).
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # the C module under `signal` (no stubs)
import contextlib
import ctypes
import errno
import functools
import os
import pickle
import select
import signal
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from pipec.backends.local import preload

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_HEADER = struct.Struct("!I")
_CODE = struct.Struct("!i")
EXIT_RECORD = struct.Struct("!ii")
"""A worker's own report of its end on the exit pipe: (token, exit code). Eight bytes, so one
write(2) puts it on the pipe whole (POSIX: writes up to PIPE_BUF are never interleaved)."""
_REPORTED = 0x100
"""Added to the code a worker writes on its end pipe when it reported its end itself."""
_TOOK = b"+"  # a worker's first byte on its end pipe: it has read its attempt and runs it
_TOOK_WITHIN = 30.0  # seconds a worker may take to say so before it is given up as gone
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def frame(message: Any) -> bytes:
    """One message as written on a pipe."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def unframe(buffer: bytearray) -> list[Any]:
    """The whole messages at the start of `buffer` (removed from it)."""
    found = []
    while len(buffer) >= _HEADER.size:
        (size,) = _HEADER.unpack_from(buffer)
        if len(buffer) < _HEADER.size + size:
            break
        found.append(pickle.loads(bytes(buffer[_HEADER.size : _HEADER.size + size])))
        del buffer[: _HEADER.size + size]
    return found


def serve(
    requests: int,
    events: int,
    exits: int,
    work: Callable[[Any], int],
    stand_by: Callable[[], None],
) -> NoReturn:  # pragma: no cover
    """The supervisor (in the process the runner forked; never returns). `work(attempt)` runs
    one attempt in a worker and returns its exit code; `stand_by()` is what a worker prepares
    while it waits for its attempt; `exits` is the write end of the pipe on which workers report
    their own ends. However it ends, it kills everything below it first."""
    runner = os.getppid()
    os.setsid()  # a terminal's Ctrl-C reaches the runner only, which then stops the steps
    prctl(_PR_SET_CHILD_SUBREAPER, 1)
    prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    try:
        if os.getppid() == runner:  # else the runner died before the parent-death signal was set
            fork = functools.partial(Spare.fork, exits=exits, work=work, stand_by=stand_by)
            _loop(requests, events, fork)
    finally:
        sweep_below(os.getpid())
        with contextlib.suppress(ChildProcessError):
            while True:
                os.waitpid(-1, 0)
        os._exit(0)


def _loop(
    requests: int, events: int, fork: Callable[[list[int]], Spare | None]
) -> None:  # pragma: no cover
    """Serve the runner's requests and report the ends of workers that could not report their
    own until the runner is gone. `fork(fds)` forks a spare that closes `fds`."""
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    stopping: list[int] = []
    for signum in _STOP_SIGNALS:
        signal.signal(signum, lambda signum, frame: stopping.append(signum))
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a runner gone is a BrokenPipeError
    inherited = [requests, events, wake_read, wake_write]
    live: dict[int, int] = {}  # worker pid -> token
    ending: dict[int, Spare] = {}  # a live worker's end pipe -> the worker
    spare: Spare | None = None  # a worker forked ahead, waiting for its attempt
    threaded = False  # a preload left threads: fork no worker any more
    pending = bytearray()
    try:
        while not stopping:
            try:
                readable, _, _ = select.select([requests, wake_read, *ending], [], [])
            except InterruptedError:
                continue
            ended = [ending.pop(fd).ended(live) for fd in readable if fd in ending]
            if not _report(events, [report for report in ended if report is not None]):
                return
            if wake_read in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_read, 4096)
                if not _reap(live, events, spare):
                    return  # the runner is gone
            if requests not in readable:
                continue
            data = os.read(requests, 1 << 16)
            if not data:
                return  # the runner is gone
            pending += data
            for message in unframe(pending):
                match message:
                    case ("start", token, _, _) if threaded:
                        if not _report(events, [("refused", token)]):
                            return
                    case ("start", token, bytes() as attempt, str() as log_path):
                        given = _CODE.pack(token) + attempt
                        worker = _hand(spare, given, [*inherited, *ending], fork)
                        if worker is None:
                            _cannot_start(log_path)
                            if not _report(events, [("exit", token, 1)]):
                                return
                        else:
                            live[worker.pid] = token
                            ending[worker.end] = worker
                        # The next attempt's worker is forked now, while this one runs: the next
                        # step starts as soon as the runner asks for it.
                        spare = fork([*inherited, *ending])
                    case ("preload", modules, cwd) if not threaded:
                        if spare is not None:  # forked before these imports: not warm enough
                            spare.discard()
                            spare = None
                        loaded = preload.preload(modules, cwd)
                        threads = preload.settled_threads()
                        threaded = threads > 1
                        if not _report(events, [("preloaded", loaded, threads)]):
                            return
                        if not threaded:
                            spare = fork([*inherited, *ending])
                    case ("stop", token):
                        for pid, owner in list(live.items()):
                            if owner == token:
                                sweep(pid)
    finally:
        if spare is not None:  # nothing below this process then, as a rule (`sweep_below`)
            spare.discard()


def _hand(
    spare: Spare | None,
    attempt: bytes,
    inherited: list[int],
    fork: Callable[[list[int]], Spare | None],
) -> Spare | None:  # pragma: no cover - supervisor
    """The worker that took `attempt` (its token, then the pickled `Attempt`): the spare, else
    (none, or it was killed from outside) a fresh fork; None when the system cannot fork."""
    if spare is not None and spare.hand(attempt):
        return spare
    fresh = fork(inherited)
    return fresh if fresh is not None and fresh.hand(attempt) else None


def _cannot_start(log_path: str) -> None:  # pragma: no cover - supervisor
    """Say in the step's log that no process could be forked for it."""
    with contextlib.suppress(OSError), open(log_path, "a", encoding="utf-8") as log:
        log.write("pipec: the step could not be started: the system could not fork a process\n")


class Spare:
    """A worker forked before its attempt is known, waiting on a pipe of its own for it (its
    token and the pickled `Attempt`, then end of file). Every attempt still gets a fresh
    process: a spare takes one attempt and exits, and the next spare is forked while it runs.

    Once its step returned and its tree is ended, just before it exits, the worker reports its
    end to the runner itself, on the exit pipe (`report_exit`): the runner learns of it without
    a relay here, and before the kernel has torn down the worker's memory (milliseconds for a
    fork of a large process). On a second pipe of its own (`end`) it then writes its exit code
    for the supervisor, marked as reported when it was. A worker that dies without writing it
    is reported by the supervisor when it is reaped."""

    def __init__(self, pid: int, handoff: int, end: int) -> None:
        self.pid, self.handoff, self.end = pid, handoff, end

    @classmethod
    def fork(
        cls,
        inherited: list[int],
        *,
        exits: int,
        work: Callable[[Any], int],
        stand_by: Callable[[], None],
    ) -> Spare | None:  # pragma: no cover - supervisor
        """Fork a worker that closes `inherited`, calls `stand_by()`, waits for its attempt,
        runs it with `work` and reports its end on `exits`; None when the system cannot."""
        me = os.getpid()
        pipes: list[int] = []
        try:
            pipes += os.pipe()
            pipes += os.pipe()
            pid = os.fork()
        except OSError:
            for fd in pipes:
                os.close(fd)
            return None
        handoff_read, handoff, end, end_write = pipes
        if pid == 0:
            os.close(handoff)
            os.close(end)
            _worker(me, inherited, handoff_read, (end_write, exits), (stand_by, work))
        os.close(handoff_read)
        os.close(end_write)
        return cls(pid, handoff, end)

    def ended(self, live: dict[int, int]) -> tuple[str, int, int] | None:  # pragma: no cover
        """The report of its end, from its end pipe: None when the worker reported it itself,
        or died without writing one (then it is reported when reaped). A worker whose end pipe
        says it ended is no longer live."""
        data = b""
        with contextlib.suppress(OSError):
            data = os.read(self.end, _CODE.size)
        os.close(self.end)
        if len(data) != _CODE.size or self.pid not in live:
            return None
        (code,) = _CODE.unpack(data)
        token = live.pop(self.pid)
        return None if code & _REPORTED else ("exit", token, code)

    def hand(self, attempt: bytes) -> bool:  # pragma: no cover - supervisor
        """Give it its attempt; False when it is gone (killed from outside). A worker killed a
        moment ago may not have closed its end of the pipe yet, so a write that succeeds proves
        nothing: the worker's `_TOOK` does (it is sent before the step runs, so a kill after it
        is the attempt's own end)."""
        try:
            view = memoryview(attempt)
            while view:
                view = view[os.write(self.handoff, view) :]
        except OSError:
            self.discard()
            return False
        self._close_handoff()
        took = b""
        with contextlib.suppress(OSError):
            if select.select([self.end], [], [], _TOOK_WITHIN)[0]:
                took = os.read(self.end, len(_TOOK))
        if took != _TOOK:
            self.discard()
            return False
        return True

    def _close_handoff(self) -> None:  # pragma: no cover - supervisor
        """Close the hand-off pipe once (its number may be reused by the next pipe)."""
        if self.handoff >= 0:
            with contextlib.suppress(OSError):
                os.close(self.handoff)
            self.handoff = -1

    def discard(self) -> None:  # pragma: no cover - supervisor
        """Kill it and reap it (it ran nothing: nothing to report)."""
        self._close_handoff()
        if self.end >= 0:
            with contextlib.suppress(OSError):
                os.close(self.end)
            self.end = -1
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _reap(
    live: dict[int, int], events: int, spare: Spare | None
) -> bool:  # pragma: no cover - supervisor
    """Report the workers that ended; sweep what a worker left behind without ending it (the
    spare excepted). False when the runner no longer reads the reports."""
    ended: list[tuple[Any, ...]] = []
    with contextlib.suppress(ChildProcessError):
        while True:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            token = live.pop(pid, None)
            if token is not None:
                ended.append(("exit", token, os.waitstatus_to_exitcode(status)))
    if ended:
        for child in children(os.getpid()):
            if child not in live and (spare is None or child != spare.pid):
                sweep(child)
    return _report(events, ended)


def _report(events: int, reports: list[tuple[Any, ...]]) -> bool:  # pragma: no cover
    """Write reports to the runner; False when it no longer reads them."""
    try:
        for report in reports:
            os.write(events, frame(report))
    except BrokenPipeError:
        return False
    return True


def _worker(
    supervisor: int,
    inherited: list[int],
    handoff: int,
    ends: tuple[int, int],
    calls: tuple[Callable[[], None], Callable[[Any], int]],
) -> NoReturn:  # pragma: no cover - runs in the forked worker
    """Prepare (`calls`: what to do while waiting, then how to run the attempt), wait for an
    attempt on `handoff`, run it, end what it left running, report its exit code (`ends`: its
    own end pipe and the exit pipe) and exit with it (0 at once when the supervisor closes
    `handoff` without giving one)."""
    end, exits = ends
    stand_by, work = calls
    code = 1
    try:
        for fd in inherited:
            os.close(fd)
        signal.set_wakeup_fd(-1)
        for signum in (*_STOP_SIGNALS, signal.SIGCHLD, signal.SIGPIPE):
            # `_signal` itself: `signal.signal` turns numbers into enum members and back, Python
            # code each fresh fork would run (and copy the pages of) for nothing.
            _signal.signal(signum, _signal.SIG_DFL)
        os.setpgid(0, 0)
        prctl(_PR_SET_CHILD_SUBREAPER, 1)
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != supervisor:
            os._exit(128 + signal.SIGKILL)
        stand_by()
        data = bytearray()
        while chunk := os.read(handoff, 1 << 16):
            data += chunk
        os.close(handoff)
        if not data:
            os._exit(0)
        os.write(end, _TOOK)  # the supervisor waits for it (see `Spare.hand`)
        pipes = (_identity(end), _identity(exits))
        (token,) = _CODE.unpack_from(data)
        code = work(pickle.loads(memoryview(data)[_CODE.size :]))
        end_tree()
        code &= 0xFF  # what the kernel reports of _exit(code)
        reported = 0
        if _identity(exits) == pipes[1] and report_exit(exits, token, code):
            reported = _REPORTED
        if _identity(end) == pipes[0]:
            with contextlib.suppress(OSError):
                os.write(end, _CODE.pack(code | reported))
    finally:
        os._exit(code)


def _identity(fd: int) -> tuple[int, int] | None:
    """What `fd` is open on (device, inode), None when it is closed. A step may close the
    worker's pipes and open files that get their numbers: nothing is written to those."""
    try:
        found = os.fstat(fd)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def report_exit(exits: int, token: int, code: int) -> bool:
    """Tell the runner that attempt `token` ended with `code`; False when the pipe is gone (the
    step closed or replaced the descriptor: the supervisor reports it then)."""
    record = EXIT_RECORD.pack(token, code)
    try:
        return os.write(exits, record) == len(record)
    except OSError:
        return False


def end_tree() -> None:
    """In a process whose step has returned: kill everything still below it and reap it all."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] != 0:
            continue  # ended children (orphans re-parented here among them)
    except ChildProcessError:
        return  # no child, so nothing below: the common case costs one system call
    sweep_below(os.getpid())
    with contextlib.suppress(ChildProcessError):
        while True:
            os.waitpid(-1, 0)


def sweep(root: int) -> None:
    """Kill `root` and every process below it, so that none can escape by forking meanwhile."""
    with contextlib.suppress(OSError):
        os.kill(root, signal.SIGSTOP)
    _freeze_and_kill(root, [root])
    with contextlib.suppress(OSError):
        os.killpg(root, signal.SIGKILL)  # where /proc cannot show what is below `root`


def sweep_below(root: int) -> None:
    """Kill every process below `root` (not `root` itself), a child subreaper (the supervisor,
    a worker): every orphan below it becomes its child, so when it has no child at all, nothing
    is below it, and its own children lists say so without reading every process's status."""
    with contextlib.suppress(OSError):  # when /proc cannot tell, sweep as if it had said yes
        if not children(root):
            return
    _freeze_and_kill(root, [])


def _freeze_and_kill(root: int, frozen: list[int]) -> None:
    """SIGSTOP what is below `root` until a pass finds nothing new (a stopped process cannot
    fork), then SIGKILL every process stopped, `frozen` included."""
    seen = set(frozen)
    while True:
        fresh = [pid for pid in descendants(root) if pid not in seen]
        if not fresh:
            break
        for pid in fresh:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGSTOP)
            seen.add(pid)
            frozen.append(pid)
    for pid in frozen:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def children(pid: int) -> list[int]:
    """The children of a process, those of every thread of it (Linux's task `children` lists
    when the kernel has them, else a walk of /proc)."""
    tasks = Path(f"/proc/{pid}/task")
    try:
        return [
            int(child)
            for task in os.listdir(tasks)
            for child in (tasks / task / "children").read_text(encoding="ascii").split()
        ]
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EACCES):
            raise
    return [child for child, parent in _parents().items() if parent == pid]


def descendants(root: int) -> list[int]:
    """Every process below `root`, by parent pid through /proc (empty without /proc)."""
    below: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        below.setdefault(parent, []).append(child)
    found: list[int] = []
    pending = [root]
    while pending:
        for child in below.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process /proc shows."""
    parents: dict[int, int] = {}
    with contextlib.suppress(OSError):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                text = (entry / "stat").read_text(encoding="utf-8", errors="replace")
                parents[int(entry.name)] = int(text.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # ended meanwhile
    return parents


def prctl(option: int, value: int) -> None:
    """Linux prctl(2); a no-op elsewhere."""
    call = _libc_prctl()
    if call is not None:
        call(option, value, 0, 0, 0)


@functools.cache
def _libc_prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up once: the supervisor calls it before its first fork, so every
    worker inherits the handle instead of loading the C library's symbols again (a new ctypes
    library object builds a class: some 70 pages a fresh fork would copy per step)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return function
