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
