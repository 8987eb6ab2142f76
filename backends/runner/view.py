"""What a local run shows while it runs (on stderr) and the summary at the end.

A terminal gets a rich live view: counts of pending / running / done / cached / skipped / failed
steps, the running ones with their elapsed time. Anything else gets one plain line per change.
The runner drives refreshes itself (no rich refresh thread), so it stays single-threaded and safe
to fork from.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # rich is imported by the live view only (a tenth of a second to import)
    from rich.console import Group

STATUS_STYLE = {
    "succeeded": "green",
    "cached": "cyan",
    "skipped": "dim",
    "failed": "bold red",
    "upstream_failed": "red",
    "running": "yellow",
    "retrying": "magenta",
    "pending": "dim",
}
COUNTED = ("pending", "running", "succeeded", "cached", "skipped", "failed", "upstream_failed")
REFRESH_SECONDS = 0.1


class View(Protocol):
    """Receives step status changes from the runner."""

    def step_changed(self, label: str, status: str, detail: str = "") -> None:
        """A step instance moved to `status`."""

    def tick(self) -> None:
        """Called often by the runner; redraw if due."""

    def close(self, status: str) -> None:
        """The run ended with `status`."""


_STRIPPED = dict.fromkeys(map(ord, "\a\b\v\f\r"))
"""Control characters a line view drops (those rich's console strips)."""


class QuietView:
    """Shows nothing (for `--json` consumers that redirect stderr, and for tests)."""

    def step_changed(self, label: str, status: str, detail: str = "") -> None:
        """Ignore."""

    def tick(self) -> None:
        """Ignore."""

    def close(self, status: str) -> None:
        """Ignore."""


class LineView:
    """One line per change, for logs and CI: plain text written straight to stderr (a line per
    step start and end; rendering each through rich cost more than a trivial step's runner
    work), with the control characters rich would strip removed and tabs expanded."""

    def __init__(self, run_id: str, total: int) -> None:
        self.started = time.monotonic()
        # Loops add one instance per item at run time, so the plan's count is a lower bound.
        self._write(f"run {run_id}: {total} step(s) in the plan")

    def step_changed(self, label: str, status: str, detail: str = "") -> None:
        """Print the change with the run's elapsed time."""
        elapsed = time.monotonic() - self.started
        suffix = f"  ({detail})" if detail else ""
        self._write(f"[{elapsed:7.2f}s] {label}: {status}{suffix}")

    def tick(self) -> None:
        """Nothing to redraw."""

    def close(self, status: str) -> None:
        """Print the final status."""
        elapsed = time.monotonic() - self.started
        self._write(f"[{elapsed:7.2f}s] run {status}")

    @staticmethod
    def _write(line: str) -> None:
        sys.stderr.write(line.translate(_STRIPPED).expandtabs(8) + "\n")
        sys.stderr.flush()


class LiveView:
    """A rich live panel redrawn by the runner at most every REFRESH_SECONDS."""

    def __init__(self, run_id: str, labels: Sequence[str]) -> None:
        self.run_id = run_id
        self.status = dict.fromkeys(labels, "pending")
        self.running_since: dict[str, float] = {}
        self.started = time.monotonic()
        self.last_draw = 0.0
        from rich.console import Console
        from rich.live import Live

        self.live = Live(
            self._render(),
            console=Console(stderr=True),
            auto_refresh=False,
            transient=False,
        )
        self.live.start()

    def step_changed(self, label: str, status: str, detail: str = "") -> None:
        """Track the change; redraw now when a step fails (worth seeing at once)."""
        self.status[label] = status
        if status == "running":
            self.running_since[label] = time.monotonic()
        else:
            self.running_since.pop(label, None)
        if status == "failed":
            self.last_draw = 0.0
        self.tick()

    def tick(self) -> None:
        """Redraw if the last draw is older than REFRESH_SECONDS."""
        now = time.monotonic()
        if now - self.last_draw >= REFRESH_SECONDS:
            self.last_draw = now
            self.live.update(self._render(), refresh=True)

    def close(self, status: str) -> None:
        """Draw the final state and stop."""
        self.live.update(self._render(final=status), refresh=True)
        self.live.stop()

    def _render(self, final: str | None = None) -> Group:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        elapsed = time.monotonic() - self.started
        counts = {name: 0 for name in COUNTED}
        for status in self.status.values():
            counts[status if status in counts else "running"] += 1
        line = Text(f"run {self.run_id}  {elapsed:6.1f}s  ")
        for name in COUNTED:
            if counts[name]:
                line.append(f"{name} {counts[name]}  ", style=STATUS_STYLE.get(name, ""))
        if final:
            line.append(final, style="bold")
        table = Table(show_header=False, box=None, padding=(0, 1))
        now = time.monotonic()
        for label, since in sorted(self.running_since.items(), key=lambda kv: kv[1])[:15]:
            table.add_row(Text(label), Text(f"{now - since:5.1f}s", style="yellow"))
        return Group(line, table)


def make_view(mode: str, run_id: str, labels: Sequence[str]) -> View:
    """`auto` picks live for a terminal on stderr, lines otherwise; `plain`, `live`, `quiet`."""
    if mode == "auto":
        mode = "live" if sys.stderr.isatty() else "plain"
    if mode == "live":
        return LiveView(run_id, labels)
    if mode == "plain":
        return LineView(run_id, len(labels))
    return QuietView()
