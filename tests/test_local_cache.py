"""Caching on the local target: what reuses a result, and what the summary says when not."""

from __future__ import annotations

from pathlib import Path

from tests.local_helpers import by_label, make_project, run_here, run_json

SOURCE = """
@step(cache=False)
def read_data(path: str) -> str:
    return Path(path).read_text()

@step
def clean(text: str) -> str:
    return text.strip().upper()

@step
def scale(factor: int) -> int:
    return factor * {factor_code}

@step
def combine(text: str, scaled: int) -> str:
    return f"{{text}}:{{scaled}}"

@pipeline
def cached(path: str, factor: int = 2) -> None:
    combine(clean(read_data(path)), scale(factor))
"""


def _write(root: Path, factor_code: str = "10") -> str:
    return make_project(root, SOURCE.format(factor_code=factor_code))


def _statuses(summary: dict[str, object]) -> dict[str, tuple[str, str]]:
    return {k: (v["status"], v["reason"]) for k, v in by_label(summary).items()}  # type: ignore[arg-type]


def test_rerun_is_cached_and_cache_false_always_runs(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text(" hello ")
    ref = _write(tmp_path)
    code, first = run_json(tmp_path, ref, "--param", f"path={data}")
    assert code == 0
    assert by_label(first)["combine"]["outputs"] == {"output": "HELLO:20"}
    code, second = run_json(tmp_path, ref, "--param", f"path={data}")
    status = _statuses(second)
    assert status["read_data"][0] == "succeeded"  # cache=False
    assert "cache=False" in status["read_data"][1]
    for step in ("clean", "scale", "combine"):
        assert status[step][0] == "cached"
        assert first["run_id"] in status[step][1]


def test_changed_param_reruns_only_what_reads_it(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("x")
    ref = _write(tmp_path)
    run_json(tmp_path, ref, "--param", f"path={data}")
    _, summary = run_json(tmp_path, ref, "--param", f"path={data}", "--param", "factor=3")
    status = _statuses(summary)
    assert status["clean"][0] == "cached"
    assert status["scale"] == ("succeeded", "not cached: param factor changed")
    assert status["combine"] == ("succeeded", "not cached: input scaled changed")


def test_changed_code_reruns_and_equal_outputs_stay_cached(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("x")
    ref = _write(tmp_path, factor_code="10")
    run_json(tmp_path, ref, "--param", f"path={data}")
    # Same result, different code: scale re-runs, combine sees an equal input hash.
    (tmp_path / ref).write_text((tmp_path / ref).read_text().replace("* 10", "* (5 + 5)"))
    _, summary = run_json(tmp_path, ref, "--param", f"path={data}")
    status = _statuses(summary)
    assert status["scale"] == ("succeeded", "not cached: code changed")
    assert status["combine"][0] == "cached"


def test_changed_input_content_invalidates_consumers(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("first")
    ref = _write(tmp_path)
    run_json(tmp_path, ref, "--param", f"path={data}")
    data.write_text("second")
    _, summary = run_json(tmp_path, ref, "--param", f"path={data}")
    status = _statuses(summary)
    assert status["clean"] == ("succeeded", "not cached: input text changed")
    assert status["combine"] == ("succeeded", "not cached: input text changed")
    assert status["scale"][0] == "cached"
    assert by_label(summary)["combine"]["outputs"] == {"output": "SECOND:20"}


def test_no_cache_flag_runs_everything(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("x")
    ref = _write(tmp_path)
    run_json(tmp_path, ref, "--param", f"path={data}")
    _, summary = run_json(tmp_path, ref, "--param", f"path={data}", "--no-cache")
    for step, (state, why) in _statuses(summary).items():
        assert state == "succeeded", step
        assert "cache" in why
    assert _statuses(summary)["clean"][1] == "not cached: --no-cache"


def test_deleted_outputs_are_not_reused(tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "data.txt"
    data.write_text("x")
    ref = _write(tmp_path)
    _, first = run_json(tmp_path, ref, "--param", f"path={data}")
    shutil.rmtree(tmp_path / ".pipec" / first["run_id"] / "scale")
    _, summary = run_json(tmp_path, ref, "--param", f"path={data}")
    assert _statuses(summary)["scale"] == (
        "succeeded",
        "not cached: outputs of the earlier execution are gone",
    )


HELPERS = """
FACTOR = 2

def helper(x: int) -> int:
    return x * FACTOR

@step
def uses_helper(x: int = 3) -> int:
    return helper(x)

@step
def unrelated() -> int:
    return 1

@step
def read_mode() -> str:
    import os
    return os.environ.get("MODE", "unset")

@pipeline
def helpers() -> None:
    uses_helper()
    unrelated()
    read_mode.with_options(env={"MODE": "x"})()
"""


def test_helpers_constants_and_env_are_part_of_the_key(tmp_path: Path) -> None:
    """Editing a constant a step reaches through a helper re-runs that step (and only it);
    changing a step's env re-runs it too; a copy of the module is a different step."""
    ref = make_project(tmp_path, HELPERS)
    _, first = run_json(tmp_path, ref)
    assert by_label(first)["uses_helper"]["outputs"] == {"output": 6}
    source = (tmp_path / ref).read_text()
    (tmp_path / ref).write_text(
        source.replace("FACTOR = 2", "FACTOR = 5").replace('"MODE": "x"', '"MODE": "y"')
    )
    _, second = run_json(tmp_path, ref)
    status = _statuses(second)
    assert status["uses_helper"] == ("succeeded", "not cached: code changed")
    assert by_label(second)["uses_helper"]["outputs"] == {"output": 15}
    assert status["unrelated"][0] == "cached"
    assert status["read_mode"] == ("succeeded", "not cached: env changed")
    assert by_label(second)["read_mode"]["outputs"] == {"output": "y"}
    copy = make_project(tmp_path, HELPERS.replace("FACTOR = 2", "FACTOR = 100"))
    _, third = run_json(tmp_path, copy)
    assert by_label(third)["uses_helper"]["outputs"] == {"output": 300}


def test_a_step_using_what_cannot_be_hashed_is_never_cached(tmp_path: Path) -> None:
    ref = make_project(
        tmp_path,
        """
        import threading

        LOCK = threading.Lock()

        @step
        def guarded() -> int:
            with LOCK:
                return 1

        @pipeline
        def p() -> None:
            guarded()
        """,
    )
    first = run_here(tmp_path, ref)
    second = run_here(tmp_path, ref)
    assert first.ok and second.ok
    step = second.step("guarded")
    assert step.status == "succeeded"
    assert step.reason == (
        "not cached: the step uses LOCK (_thread.lock), which pipec cannot hash by value"
    )


def test_an_iteration_is_served_by_an_equal_one_that_just_ended_in_the_same_run(
    tmp_path: Path,
) -> None:
    """With one step at a time, iteration 2 is prepared in the same pass of the runner's loop
    that records the end of iteration 0 (same code, same input): it is served from it."""
    ref = make_project(
        tmp_path,
        """
        @step
        def items() -> list[int]:
            return [1, 1, 1]

        @step
        def double(x: int) -> int:
            return 2 * x

        @pipeline
        def same_items() -> None:
            with foreach(items()) as x:
                double(x)
        """,
    )
    code, summary = run_json(tmp_path, ref, "--parallelism", "1")
    assert code == 0, summary
    steps = by_label(summary)
    statuses = [steps[f"double[{i}]"]["status"] for i in range(3)]
    assert statuses == ["succeeded", "succeeded", "cached"]
    assert steps["double[2]"]["reason"] == f"cached from run {summary['run_id']}"
