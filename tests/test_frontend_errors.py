"""Bad input in the user's pipeline file: every command answers with one diagnostic at the user's
line and exit code 2 (never exit 0 with nothing done, never a traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PIPEC = Path(sys.executable).with_name("pipec")

EXITS_AT_IMPORT = """\
import sys
from pipec import pipeline, step

@step
def one() -> int:
    return 1

sys.exit({code})

@pipeline
def p() -> None:
    one()
"""


def _pipec(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PIPEC), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("code", ["0", "None", "'bye'"])
@pytest.mark.parametrize(
    "command", [["validate"], ["compile", "--target", "local", "-o", "out"], ["run"]]
)
def test_a_module_that_exits_at_import_is_a_diagnostic(
    tmp_path: Path, code: str, command: list[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "t"\n', encoding="utf-8")
    (tmp_path / "flow.py").write_text(EXITS_AT_IMPORT.format(code=code), encoding="utf-8")
    done = _pipec(tmp_path, command[0], "flow.py", *command[1:])
    assert done.returncode == 2, done.stdout + done.stderr
    assert "flow.py:8: error[F001]" in done.stderr
    assert "exited" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / ".pipec").exists()


def test_a_step_defined_inside_a_function_is_a_diagnostic_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "t"\n', encoding="utf-8")
    (tmp_path / "flow.py").write_text(
        """\
from pipec import pipeline, step

def make_step():
    @step
    def inner() -> int:
        return 1
    return inner

@pipeline
def p() -> None:
    make_step()()
""",
        encoding="utf-8",
    )
    for command in (["validate"], ["compile", "--target", "kubeflow", "-o", "out"], ["run"]):
        done = _pipec(tmp_path, command[0], "flow.py", *command[1:])
        assert done.returncode == 2, done.stdout + done.stderr
        assert "flow.py:5: error[F018]: step 'inner' is defined inside 'make_step'" in done.stderr
    assert not (tmp_path / "out").exists()


BAD_OPTIONS = """\
from pipec import Resources, pipeline, step

@step(resources=Resources(gpus=1))
def one() -> int:
    return 1

@step(retries=-1, timeout="10 minutes", env={"A": 1})
def two() -> int:
    return 1

@step(retrys=2, resources=Resources(cpu="500m"))
def three() -> int:
    return 1

@pipeline
def p() -> None:
    one()
    two()
    three()
    three()
    three.with_options(timeout="soon")()
"""


def test_bad_step_options_are_r_codes_at_their_lines_all_at_once(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "t"\n', encoding="utf-8")
    (tmp_path / "flow.py").write_text(BAD_OPTIONS, encoding="utf-8")
    done = _pipec(tmp_path, "validate", "flow.py")
    assert done.returncode == 2
    found = [line for line in done.stderr.splitlines() if ": error[" in line]
    assert found == [
        "flow.py:3: error[R006]: Resources has no field 'gpus' (did you mean 'gpu'?)",
        "flow.py:7: error[R004]: retries must be a whole number >= 0, got -1",
        "flow.py:7: error[R004]: timeout '10 minutes' is not a duration; write e.g. '45s', "
        "'10m' or '1h30m'",
        "flow.py:7: error[R007]: env must map names to strings, got {'A': 1}",
        "flow.py:11: error[R006]: unknown step option 'retrys' (did you mean 'retries'?)",
        "flow.py:21: error[R004]: timeout 'soon' is not a duration; write e.g. '45s', '10m' "
        "or '1h30m'",
    ]
    assert "pydantic" not in done.stderr and "Traceback" not in done.stderr


def test_cpu_takes_a_kubernetes_quantity(tmp_path: Path) -> None:
    from pipec import Resources

    assert Resources(cpu="500m").ir.cpu == 0.5
    assert Resources(cpu=2).ir.cpu == 2.0
    assert Resources(memory=1024).ir.memory == "1024"


def test_parallelism_from_a_parameter_and_an_empty_image_are_diagnostics(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "t"\n', encoding="utf-8")
    (tmp_path / "flow.py").write_text(
        """\
from pipec import foreach, pipeline, step

@step(image="")
def one(x: int) -> int:
    return x

@pipeline
def p(parallel: int = 2) -> None:
    with foreach([1, 2], parallelism=parallel) as x:
        one(x)
""",
        encoding="utf-8",
    )
    done = _pipec(tmp_path, "validate", "flow.py")
    assert done.returncode == 2
    assert "flow.py:3: error[R007]: image must be a non-empty string, got ''" in done.stderr
    assert (
        "flow.py:9: error[F014]: parallelism must be a constant number, not parameter 'parallel'"
        in done.stderr
    )


def test_values_no_engine_can_carry_are_diagnostics(tmp_path: Path) -> None:
    from tests.helpers import diagnose

    found = diagnose(
        tmp_path,
        """
        @step
        def show(text: str) -> str:
            return text

        @pipeline
        def p() -> None:
            show.with_options(name="bad \\ud800 name")(text="x")
            show.with_options(name="value")(text="lone \\udfff")
            show.with_options(name="nul", env={"A": "a\\x00b"})(text="x")
            show.with_options(name="huge", env={"B": "x" * 200_000})(text="x")
            show.with_options(name="fine", env={"C": "carriage\\rreturn"})(text="ünï ✓")
        """,
    )
    messages = [(d.code, d.message.split(",")[0]) for d in found]
    assert [code for code, _ in messages] == ["R008"] * 4, messages
    assert "lone surrogate" in found[0].message and "name" in found[0].message
    assert "lone surrogate" in found[1].message and "args.text.value" in found[1].message
    assert "NUL" in found[2].message
    assert "200,002 bytes" in found[3].message


SCRIPT = """\
from pipec import pipeline, step

@step
def one() -> int:
    return 1

@step
def boom(x: int) -> int:
    {body}

@pipeline
def p() -> None:
    boom(one())

if __name__ == "__main__":
    p()
"""


def test_python_file_py_reports_like_pipec_run(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "t"\n', encoding="utf-8")
    script = tmp_path / "flow.py"
    script.write_text(SCRIPT.format(body='raise ValueError("exploded")'), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "flow.py"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "step boom failed" in done.stderr
    assert "ValueError: exploded" in done.stderr  # the step's own error, from its log
    assert "resume with: pipec run --resume" in done.stderr
    assert "dsl.py" not in done.stderr and "driver.py" not in done.stderr
    script.write_text(SCRIPT.format(body="return x + 1"), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "flow.py"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "succeeded" in done.stderr and "1 succeeded" in done.stderr


def test_a_literal_list_is_checked_element_by_element(tmp_path: Path) -> None:
    from tests.helpers import diagnose

    found = diagnose(
        tmp_path,
        """
        @step
        def mean(xs: list[float]) -> float:
            return sum(xs) / len(xs)

        @pipeline
        def p() -> None:
            mean(xs=[0.1, "x"])
        """,
    )
    assert [d.code for d in found] == ["T101"]


def test_an_ir_file_whose_code_changed_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "t"\n', encoding="utf-8")
    flow = tmp_path / "flow.py"
    flow.write_text(SCRIPT.format(body="return x + 1"), encoding="utf-8")
    done = _pipec(tmp_path, "ir", "flow.py", "--format", "json")
    assert done.returncode == 0, done.stderr
    (tmp_path / "flow.json").write_text(done.stdout, encoding="utf-8")
    assert _pipec(tmp_path, "run", "flow.json").returncode == 0
    flow.write_text(SCRIPT.format(body="return x + 2"), encoding="utf-8")
    done = _pipec(tmp_path, "run", "flow.json")
    assert done.returncode == 2
    assert "flow.json:1: error[F021]: the code of flow:boom changed since flow.json was" in (
        done.stderr
    )
    assert "flow:one" not in done.stderr  # only what changed


def test_a_blank_container_setting_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "t"\n', encoding="utf-8")
    (tmp_path / "flow.py").write_text(SCRIPT.format(body="return x"), encoding="utf-8")
    for target in ("kubeflow", "airflow", "github"):
        done = _pipec(tmp_path, "compile", "flow.py", "--target", target, "--set", "image= ")
        assert done.returncode == 2, (target, done.stderr)
        assert "image" in done.stderr and "must not be blank" in done.stderr
