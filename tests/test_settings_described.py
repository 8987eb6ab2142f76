"""Every target setting is described (type, default, description) by `pipec targets`, and a
pyproject section pipec does not know is an error rather than silently ignored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipec import backends
from pipec.backends.settings import describe
from pipec.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("target", sorted(backends.available()))
def test_every_setting_has_a_description(target: str) -> None:
    infos = describe(backends.load(target).settings_model)
    assert infos, target
    undescribed = [info.name for info in infos if not info.description.strip()]
    assert undescribed == [], f"{target}: write a docstring under {undescribed}"


def test_targets_name_shows_type_default_and_description() -> None:
    result = CliRunner().invoke(main, ["targets", "kubeflow", "--json"])
    assert result.exit_code == 0, result.output
    settings = json.loads(result.output)["kubeflow"]["settings"]
    # An inherited field re-defaulted by the KFP family keeps its type and gets its own default.
    assert settings["code_root"]["default"] == "/app"
    assert settings["code_root"]["type"] == "text"
    assert settings["poll_interval"] == {
        "default": 5.0,
        "description": "Seconds between two looks at the run while `pipec run --wait` follows it.",
        "required": False,
        "type": "number",
    }
    table = CliRunner().invoke(main, ["targets", "airflow"], env={"COLUMNS": "200"})
    assert table.exit_code == 0
    assert "kubernetes | docker | local" in table.output and "2024-01-01" in table.output


def test_targets_of_an_unknown_name_is_one_line() -> None:
    result = CliRunner().invoke(main, ["targets", "kubflow"])
    assert result.exit_code == 2
    assert "unknown target 'kubflow'" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[project]\nname = "p"\n\n[tool.pipec.targets.kubflow]\nimage = "a"\n',
            "pyproject.toml:4: [tool.pipec.targets] has no 'kubflow'; did you mean 'kubeflow'?",
        ),
        (
            "[tool.pipec]\ntarget = { local = { parallelism = 2 } }\n",
            "[tool.pipec] has no 'target'; did you mean 'targets'?",
        ),
    ],
)
def test_an_unknown_pyproject_section_is_an_error(tmp_path: Path, toml: str, expected: str) -> None:
    (tmp_path / "pyproject.toml").write_text(toml)
    (tmp_path / "hello.py").write_text((EXAMPLES / "hello.py").read_text())
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["compile", str(tmp_path / "hello.py"), "--target", "local", "-o", str(out)]
    )
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert not out.exists()  # nothing half-written
