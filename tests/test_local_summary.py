"""What a run reports about its steps: bounded log tails, `pipec logs` wording, and what the
runner keeps in memory of the values its steps returned."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from pipec import cli_run
from pipec.backends.runner import scheduler
from pipec.backends.runner.results import RunResult, StepResult, log_tail
from tests.local_helpers import make_project, pipec, run_here, run_json

LONG_LINE = 2_000_000


def test_a_failing_steps_long_last_line_is_cut_in_the_summary(tmp_path: Path) -> None:
    ref = make_project(
        tmp_path,
        f"""
        @step
        def noisy() -> int:
            print("first line")
            sys.stdout.write("y" * {LONG_LINE})
            sys.stdout.flush()
            raise RuntimeError("boom")

        @pipeline
        def loud() -> None:
            noisy()
        """,
    )
    done = pipec(tmp_path, "run", ref, "--view", "quiet")
    assert done.returncode == 1
    assert "step noisy failed" in done.stdout
    assert len(done.stdout) < 20_000, len(done.stdout)
    assert "characters cut" in done.stdout
    assert "RuntimeError: boom" in done.stdout  # the end of the log is what matters


def test_the_log_tail_reads_only_the_end_of_a_huge_log(tmp_path: Path) -> None:
    log = tmp_path / "huge.log"
    with log.open("wb") as handle:
        handle.truncate(300_000_000)  # sparse: one line of 300 MB of NUL bytes
        handle.seek(0, os.SEEK_END)
        handle.write(b"\nlast words\n")
    tail = log_tail(str(log))
    assert tail.endswith("last words")
    assert len(tail) < 100_000


def test_log_tail_keeps_whole_short_lines(tmp_path: Path) -> None:
    log = tmp_path / "short.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert log_tail(str(log), lines=3) == "line 97\nline 98\nline 99"


def test_logs_of_a_cached_step_say_where_its_log_is(tmp_path: Path) -> None:
    ref = make_project(
        tmp_path,
        """
        @step
        def one() -> int:
            print("hello from one")
            return 1

        @pipeline
        def single() -> None:
            one()
        """,
    )
    code, first = run_json(tmp_path, ref)
    assert code == 0
    code, second = run_json(tmp_path, ref)
    assert code == 0 and second["steps"][0]["status"] == "cached"
    done = pipec(tmp_path, "logs", second["run_id"], "one")
    assert done.returncode == 0, done.stderr
    assert "cached cached" not in done.stdout
    assert f"one was cached from run {first['run_id']}" in done.stdout
    assert f"pipec logs {first['run_id']} one" in done.stdout
    shown = pipec(tmp_path, "logs", first["run_id"], "one")
    assert shown.stdout == "hello from one\n"


def test_the_runner_keeps_only_the_values_conditions_and_loops_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values returned by steps stay in the store; the runner holds those a condition or a loop
    reads, and reads the rest back when it needs them."""
    ref = make_project(
        tmp_path,
        """
        @step
        def numbers(n: int) -> list[int]:
            return list(range(n))

        @step
        def text(x: int) -> str:
            return "v" * 50_000 + str(x)

        @step
        def size(xs: list[str]) -> int:
            return sum(len(x) for x in xs)

        @step
        def report(t: int) -> str:
            return f"total {t}"

        @pipeline
        def values(n: int = 6) -> None:
            with foreach(numbers(n)) as x:
                t = text(x)
            s = size(collect(t))
            with when(s > 10):
                report(s)
        """,
    )
    seen: list[Any] = []
    original = scheduler.Runner._result

    def spy(self: Any, status: str, duration: float) -> Any:
        seen.append(self)
        return original(self, status, duration)

    monkeypatch.setattr(scheduler.Runner, "_result", spy)
    result = run_here(tmp_path, ref)
    assert result.ok
    assert result.output("report") == "total 300006"
    assert result.output("text", iteration=(5,)) == "v" * 50_000 + "5"
    (runner,) = seen
    held = {
        (key[0], name)
        for key, outputs in runner.outputs.items()
        for name, artifact in outputs.items()
        if artifact.value_json is not None
    }
    held |= {
        (record.step_id, name)
        for record in runner.records.values()
        for name, artifact in record.artifacts.items()
        if artifact.value_json is not None
    }
    assert held <= {("numbers", "output"), ("size", "output")}


def _result(statuses: list[str], run_status: str) -> RunResult:
    steps = [
        StepResult(f"s{i}", (), "s", status, "", 1, 0.01, {}, {}, None, None)
        for i, status in enumerate(statuses)
    ]
    return RunResult("20261202-041346-070767", "p", run_status, steps, [], 1.98)


@pytest.mark.parametrize(
    ("statuses", "run_status"),
    [
        (["succeeded"] * 100, "succeeded"),  # one line, written without rich
        (["succeeded"] * 60 + ["cached"] * 40, "succeeded"),
        (["succeeded"] * 3, "succeeded"),  # a table: through rich
        (["succeeded"] * 99 + ["failed"], "failed"),
    ],
)
def test_the_summary_reads_the_same_with_or_without_rich(
    statuses: list[str], run_status: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A succeeded run with no table is one line written without importing rich: the same
    bytes as rich writes to a file."""
    for name in cli_run.RICH_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    result = _result(statuses, run_status)
    expected = io.StringIO()
    cli_run.print_summary(result, Console(file=expected, highlight=False))
    written = io.StringIO()
    monkeypatch.setattr(sys, "stdout", written)
    cli_run.show_summary(result, "local", written)
    assert written.getvalue() == expected.getvalue()
    assert expected.getvalue().count("\n") == 1 or "┃" in expected.getvalue()
