"""The submit path shared by every target that hands its files to an engine (kubeflow, vertex,
airflow; the next ones too): exit codes, progress and error lines, following a run to its end.

Exit codes, the same on every target (`ExitCode`):

* 0: submitted (with `--wait`: the run succeeded);
* 1: a run was created but did not succeed: it failed or was cancelled, or, with `--wait`, it
  could not be followed to its end (`run_timeout` passed, the API's answer had no state, the API
  failed while following). The run may still be going; the error line names it;
* 2: nothing was submitted (a missing or invalid setting or parameter, an API or connection error
  before any run existed). Retrying after fixing the cause cannot duplicate a run.

Missing settings are `SettingsError`s, raised before anything is sent; the CLI prints them as
`error: ...` and exits 2, as it does for every invalid input.

Output: progress and errors go to stderr as `pipec <target>: ...`; stdout carries only the id of
the created run, one line, so `RUN=$(pipec run REF --target kubeflow)` works in scripts.
"""

from __future__ import annotations

import enum
import json
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from pipec.backends.common.http import JSON, ApiError, one_line


class ExitCode(enum.IntEnum):
    """What `pipec run` exits with for a submitted target (see the module docstring)."""

    OK = 0
    RUN_FAILED = 1
    NOT_SUBMITTED = 2


class SubmitError(Exception):
    """Nothing (more) could be done: the message says why, in one line."""


class Deadline:
    """An overall deadline (monotonic clock), e.g. `run_timeout` seconds from now."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._at = clock() + seconds

    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self._at - self._clock())

    def passed(self) -> bool:
        """Whether the deadline has passed."""
        return self._clock() >= self._at


class Submission:
    """One submit to one target: its progress lines, and what it created so far (an error after
    a run exists must not claim that nothing was submitted)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.made: list[str] = []

    def say(self, message: str) -> None:
        """A progress or error line on stderr."""
        print(f"pipec {self.target}: {message}", file=sys.stderr, flush=True)

    def created(self, what: str, ident: str, note: str = "", primary: bool = True) -> None:
        """Record and report something created on the engine (`note`: e.g. where to see it);
        the primary one (the run) is printed alone on stdout for scripts."""
        self.made.append(f"{what} {ident}")
        if primary:
            print(ident, flush=True)
        self.say(f"created {what} {ident}" + (f" ({note})" if note else ""))


def submitting(target: str, work: Callable[[Submission], ExitCode]) -> int:
    """Run `work` and turn its errors into one line and the exit code the contract asks for."""
    submission = Submission(target)
    try:
        return int(work(submission))
    except (SubmitError, ApiError) as exc:
        if not submission.made:
            submission.say(f"error: {exc}")
            return int(ExitCode.NOT_SUBMITTED)
        submission.say(f"error: {exc} (created before the error: {', '.join(submission.made)})")
        return int(ExitCode.RUN_FAILED)


def follow(
    poll: Callable[[], JSON],
    terminal: Mapping[str, ExitCode],
    *,
    label: str,
    poll_interval: float,
    deadline: Deadline,
    say: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[ExitCode, JSON]:
    """Poll a run (`poll` answers the API's JSON with its `state`) until it reaches a state in
    `terminal`, the deadline passes, or an answer has no state; print each new state. Returns the
    exit code and the last answer (for the caller's failure details)."""
    shown: str | None = None
    while True:
        answer = poll()
        state: Any = answer.get("state")
        if not isinstance(state, str) or not state:
            say(
                f"error: {label}: the API's answer has no state, so the run cannot be followed "
                f"(answer: {one_line(json.dumps(answer, sort_keys=True, default=str))})"
            )
            return ExitCode.RUN_FAILED, answer
        if state != shown:
            say(f"{label}: {state}")
            shown = state
        if state in terminal:
            return terminal[state], answer
        if deadline.passed():
            say(
                f"error: {label} is still {state} after run_timeout ({deadline.seconds:g}s); "
                "it goes on without pipec watching"
            )
            return ExitCode.RUN_FAILED, answer
        sleep(min(poll_interval, deadline.remaining()))
