"""Every validation rule, each with a bad pipeline: one diagnostic per problem, at the right line,
with a hint; exit code 2 and nothing written from the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pipec.cli import main
from tests.helpers import diagnose, line_of, write_pipeline

STEPS = """
@step
def make(n: int = 3) -> list[float]:
    return [1.0] * n

@step
def total(xs: list[float]) -> float:
    return sum(xs)

@step
def fit(xs: list[float]) -> bytes:
    return b"m"

@step
def use(model: bytes) -> None:
    pass

@step
def flag() -> bool:
    return True

@step
def show(x: float) -> None:
    pass
"""


def codes(found: list[object]) -> list[str]:
    return [d.code for d in found]  # type: ignore[attr-defined]


def only(tmp_path: Path, body: str, code: str, needle: str) -> None:
    """The source has exactly one problem: `code`, reported at the line containing `needle`."""
    source = STEPS + body
    found = diagnose(tmp_path, source)
    assert codes(found) == [code], [d.render() for d in found]
    diagnostic = found[0]
    assert diagnostic.location is not None
    assert diagnostic.location.line == line_of(source, needle)
    assert diagnostic.hint, "every diagnostic says how to fix it"


def test_type_mismatch(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline
def p():
    model = fit(make())
    total(model)  # bad
""",
        "T101",
        "# bad",
    )


def test_missing_required_input(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline
def p():
    total()  # bad
""",
        "S002",
        "# bad",
    )


def test_unknown_keyword_suggests(tmp_path: Path) -> None:
    source = (
        STEPS
        + """
@pipeline
def p():
    total(xss=make())  # bad
"""
    )
    found = diagnose(tmp_path, source)
    assert codes(found) == ["S001", "S002"]
    assert "did you mean 'xs'" in found[0].hint


def test_parameter_not_a_value(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline
def p(model: bytes = b"x"):  # bad
    total(make())
""",
        "T102",
        "# bad",
    )


def test_parameter_default_not_a_value(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline
def p(n: int = object()):  # bad
    total(make())
""",
        "F007",
        "# bad",
    )


def test_parameter_default_wrong_type(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline
def p(n: int = "three"):  # bad
    total(make(n=n))
""",
        "T105",
        "# bad",
    )


def test_duplicate_step_names(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline
def p():
    total.with_options(name="sum")(make())
    total.with_options(name="sum")(make())  # bad
""",
        "N001",
        "# bad",
    )


def test_repeated_calls_get_unique_names(tmp_path: Path) -> None:
    found = diagnose(
        tmp_path,
        STEPS
        + """
@pipeline
def p():
    total(make())
    total(make())
""",
    )
    assert found == []


def test_output_used_outside_when(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline
def p():
    with when(flag()):
        xs = make()
    total(xs)  # bad
""",
        "C001",
        "# bad",
    )


def test_output_used_outside_foreach_without_collect(tmp_path: Path) -> None:
    source = (
        STEPS
        + """
@pipeline
def p():
    with foreach([1, 2]) as n:
        xs = make(n=n)
    show(total(xs))  # bad
"""
    )
    found = diagnose(tmp_path, source)
    assert codes(found) == ["C001"]
    assert "collect" in found[0].hint


def test_collect_inside_its_loop(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline
def p():
    with foreach([1, 2]) as n:
        xs = make(n=n)
        collect(xs)  # bad
""",
        "C002",
        "# bad",
    )


def test_collect_outside_any_loop(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline
def p():
    xs = make()
    collect(xs)  # bad
""",
        "C002",
        "# bad",
    )


def test_condition_on_artifact(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline
def p():
    model = fit(make())
    with when(model == b"x"):  # bad
        use(model)
""",
        "F003",
        "# bad",
    )


def test_condition_on_artifact_output(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline
def p():
    model = fit(make())
    with when(model):  # bad
        use(model)
""",
        "T103",
        "# bad",
    )


def test_foreach_over_non_list_param(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline
def p(n: int = 3):
    with foreach(n) as x:  # bad
        make(n=x)
""",
        "T104",
        "# bad",
    )


def test_foreach_over_non_list_literal(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline
def p():
    with foreach(3) as x:  # bad
        make(n=x)
""",
        "T104",
        "# bad",
    )


def test_foreach_over_a_list_of_artifacts(tmp_path: Path) -> None:
    # Loop items are values everywhere: this used to compile and fail at run time, after the
    # producer ran (the local runner cannot read a list of bytes as loop items either).
    only(
        tmp_path,
        """
@step
def blobs() -> list[bytes]:
    return [b"a", b"b"]

@pipeline
def p():
    with foreach(blobs()) as blob:  # bad
        use(model=blob)
""",
        "T108",
        "# bad",
    )


def test_cycle_through_after(tmp_path: Path) -> None:
    source = (
        STEPS
        + """
@pipeline
def p():
    xs = make()
    t = total(xs)
    xs.after(t)
"""
    )
    found = diagnose(tmp_path, source)
    assert codes(found) == ["O001"]
    assert "make" in found[0].message and "total" in found[0].message


def test_unrepresentable_step_name(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline
def p():
    total.with_options(name="two\\nlines")(make())  # bad
""",
        "N002",
        "# bad",
    )


def test_unrepresentable_parameter_name(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline
def p(größe: int = 3):  # bad
    total(make(n=größe))
""",
        "N003",
        "# bad",
    )


def test_bad_env_name(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline
def p():
    total.with_options(env={"A-B": "1"})(make())  # bad
""",
        "N005",
        "# bad",
    )


def test_if_on_handle(tmp_path: Path) -> None:
    source = (
        STEPS
        + """
@pipeline
def p():
    if total(make()) > 1:  # bad
        make()
"""
    )
    found = diagnose(tmp_path, source)
    assert codes(found) == ["F004"]
    assert "when" in found[0].hint
    assert found[0].location is not None
    assert found[0].location.line == line_of(source, "# bad")


def test_otherwise_without_when(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline
def p():
    make()
    with otherwise():  # bad
        make()
""",
        "F005",
        "# bad",
    )


def test_too_many_positional(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline
def p():
    total(make(), 2)  # bad
""",
        "F002",
        "# bad",
    )


def test_constant_that_is_not_a_value(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline
def p():
    total(xs={1.0, 2.0})  # bad
""",
        "F003",
        "# bad",
    )


def test_bool_compared_to_int(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline
def p():
    with when(flag() == 1):  # bad
        make()
""",
        "T106",
        "# bad",
    )


def test_bad_memory_quantity(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline
def p():
    total.with_options(resources=Resources(memory="lots"))(make())  # bad
""",
        "R002",
        "# bad",
    )


def test_bad_schedule(tmp_path: Path) -> None:
    only(
        tmp_path,
        """
@pipeline(schedule="every day")
def p():  # bad
    total(make())
""",
        "R005",
        "# bad",
    )


def test_several_problems_each_reported(tmp_path: Path) -> None:
    found = diagnose(
        tmp_path,
        STEPS
        + """
@pipeline
def p(n: int = 3):
    total(fit(make()))
    total(bogus=1)
    with foreach(n) as x:
        make(n=x)
""",
    )
    assert sorted(codes(found)) == ["S001", "S002", "T101", "T104"]


def test_bad_decorator_option_points_at_user_line(tmp_path: Path) -> None:
    source = (
        STEPS
        + """
@step(timeout="ten minutes")  # bad
def slow() -> None:
    pass

@pipeline
def p():
    slow()
"""
    )
    found = diagnose(tmp_path, source)
    assert codes(found) == ["R004"]
    assert "duration" in found[0].message
    assert found[0].location is not None
    assert found[0].location.line == line_of(source, "# bad")


def test_cli_exit_2_no_traceback_nothing_written(tmp_path: Path) -> None:
    path = write_pipeline(
        tmp_path,
        STEPS
        + """
@pipeline
def p():
    total(fit(make()))
""",
    )
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert "error[T101]" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(main, ["compile", str(path), "--target", "local", "-o", str(out)])
    assert result.exit_code == 2
    assert not out.exists()


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("missing.py", "no such file"),
        ("no.such.module:p", "no module named"),
    ],
)
def test_bad_refs(ref: str, message: str) -> None:
    result = CliRunner().invoke(main, ["validate", ref])
    assert result.exit_code == 2
    assert message in result.output


def test_unknown_target_lists_known_ones(tmp_path: Path) -> None:
    path = write_pipeline(
        tmp_path,
        STEPS
        + """
@pipeline
def p():
    total(make())
""",
    )
    result = CliRunner().invoke(main, ["compile", str(path), "--target", "nope"])
    assert result.exit_code == 2
    assert "unknown target 'nope'; known targets:" in result.output


def test_error_in_pipeline_body_points_at_user_line(tmp_path: Path) -> None:
    source = STEPS + """
@pipeline
def p():
    xs = make()
    total(xs, undefined_name)  # bad
"""
    found = diagnose(tmp_path, source)
    assert codes(found) == ["F016"]
    assert "NameError" in found[0].message
    assert found[0].location is not None
    assert found[0].location.line == line_of(source, "# bad")


def test_bad_option_at_call_site_is_a_diagnostic(tmp_path: Path) -> None:
    source = STEPS + """
@pipeline
def p():
    total.with_options(retries=-1)(make())  # bad
"""
    found = diagnose(tmp_path, source)
    assert codes(found) == ["R004"]
    assert "retries" in found[0].message
    assert found[0].location is not None
    assert found[0].location.line == line_of(source, "# bad")


def test_indexing_a_loop_item_is_a_diagnostic(tmp_path: Path) -> None:
    only(tmp_path, """
@step
def records() -> list[dict[str, float]]:
    return [{"v": 1.0}]

@pipeline
def p():
    with foreach(records()) as item:
        show(item["v"])  # bad
""", "F017", "# bad")
