"""SIGTERM and SIGHUP stop a run the way Ctrl-C does (see `stop_signals_interrupt`)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(Exception):
    """The runner received SIGTERM or SIGHUP."""


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """While a run runs, SIGTERM and SIGHUP raise `Stopped` (once: the cleanup that follows is
    not cut short by a second one). Signals someone chose to ignore (`nohup`) stay ignored; only
    the main thread can take signals, so a run in another thread keeps the defaults."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        for other in STOP_SIGNALS:
            signal.signal(other, signal.SIG_IGN)
        raise Stopped(signal.Signals(signum).name)

    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for signum, handler in previous.items():
        if handler == signal.SIG_DFL:
            signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
