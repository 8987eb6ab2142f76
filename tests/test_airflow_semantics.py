"""What the airflow target's DAG files do when Airflow runs them: where outputs land (per DAG and
per run, never outside the artifact root whatever the run id), what a task log shows of a secret,
which interpreter runs a local step, and which values cannot be handed over in the environment.

The runs are real `dag.test()` runs in the Airflow tool environment (tests/airflow_check.py),
in `local` mode against a SQLite metadata database.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipec import driver
from pipec.backends.airflow.paths import run_folder
from pipec.backends.runtime import store
from pipec.backends.settings import SettingsError
from pipec.ir.diagnostics import DiagnosticError
from tests.airflow_helpers import CHECKER, MARKER, airflow_env, check, compile_to, migrate
from tests.conftest import tool_python
from tests.helpers import write_pipeline

SECRET = "hunter2 is the token"
PIN = "Zq9"  # shorter than Airflow's own masking minimum (5): pipec masks it itself
# Airflow's default run-id pattern (^[A-Za-z0-9_.~:+-]+$) accepts `..`; Airflow 3.3 refuses it
# unless [core] allow_double_dot_in_ids is on, and `/` unless the pattern is widened. pipec's
# paths rely on neither: the runs below switch both on.
HOSTILE_RUN_ID = ".."
PERMISSIVE = {
    "AIRFLOW__CORE__ALLOW_DOUBLE_DOT_IN_IDS": "True",
    "AIRFLOW__SCHEDULER__ALLOWED_RUN_ID_PATTERN": "^.+$",
}

ALPHA = """
import os
import sys

from pipec import pipeline, step


@step
def make() -> str:
    return "alpha"


@step(secrets=["API_TOKEN", "PIN"])
def leak() -> None:
    print("token:", os.environ["API_TOKEN"], "pin:", os.environ["PIN"], flush=True)
    print("on stderr:", os.environ["API_TOKEN"], file=sys.stderr, flush=True)


@step(env={"CR": "a\\rb\\r\\nc\\n"})
def carriage(text: str) -> str:
    return os.environ["CR"] + "|" + text


@pipeline
def alpha() -> None:
    make()
    leak()
    carriage("x\\ry\\r\\n")
"""

BETA = """
from pipec import pipeline, step


@step
def make() -> str:
    return "beta"


@pipeline
def beta() -> None:
    make()
"""


def _run(dag_file: Path, env: dict[str, str], run_id: str, date: str) -> tuple[dict[str, Any], str]:
    """`dag.test()` of one DAG with a chosen run id and logical date: its answer, and everything
    the run printed (Airflow's task logs included)."""
    command = [str(tool_python("airflow")), str(CHECKER), "run-as", str(dag_file)]
    command += [dag_file.stem, "{}", run_id, date]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    answers = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    assert done.returncode == 0 and answers, done.stderr[-6000:]
    return json.loads(answers[-1][len(MARKER) :]), done.stdout + done.stderr


@pytest.fixture(scope="module")
def two_dags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two pipelines of two projects sharing one artifact root, both run as run `..` for the
    same logical date, compiled in local mode with no `python` or `code_root` setting."""
    base = tmp_path_factory.mktemp("two-dags")
    dags = base / "dags"
    root = base / "shared" / "artifacts"
    files = {}
    for name, source in (("alpha", ALPHA), ("beta", BETA)):
        project = base / f"project-{name}"
        project.mkdir()
        (project / f"{name}.py").write_text(source, encoding="utf-8")
        settings = ["operator=local", f"artifact_root={root}"]
        files[name] = compile_to(str(project / f"{name}.py"), dags, settings)
    secrets = {"AIRFLOW_VAR_API_TOKEN": SECRET, "AIRFLOW_VAR_PIN": PIN}
    env = airflow_env(base / "home", dags, {**secrets, **PERMISSIVE})
    migrate(env)
    runs = {
        name: _run(path, env, HOSTILE_RUN_ID, "2024-05-01T00:00:00+00:00")
        for name, path in files.items()
    }
    return {"base": base, "root": root, "runs": runs, "files": files}


@pytest.mark.slow
def test_two_dags_sharing_a_root_and_a_run_id_keep_their_own_outputs(
    two_dags: dict[str, Any],
) -> None:
    for name in ("alpha", "beta"):
        answer, _ = two_dags["runs"][name]
        assert answer["state"] == "success", answer
        assert answer["run_id"] == HOSTILE_RUN_ID
    root: Path = two_dags["root"]
    folder = run_folder(HOSTILE_RUN_ID)
    assert folder == "%2E."
    assert store.read(str(root / "alpha" / folder / "make" / "output")) == "alpha"
    assert store.read(str(root / "beta" / folder / "make" / "output")) == "beta"


@pytest.mark.slow
def test_no_run_id_writes_outside_the_artifact_root(two_dags: dict[str, Any]) -> None:
    root: Path = two_dags["root"]
    written = {p.relative_to(two_dags["base"]).parts[:2] for p in two_dags["base"].rglob("*")}
    outside = {parts for parts in written if parts[0] == "shared" and parts != ("shared",)}
    assert outside == {("shared", "artifacts")}
    # Besides one folder per DAG, only the step runtime's cache index (`runtime.cache`).
    assert sorted(p.name for p in root.iterdir()) == [".pipec-cache", "alpha", "beta"]


@pytest.mark.slow
def test_local_steps_print_secrets_masked(two_dags: dict[str, Any]) -> None:
    answer, printed = two_dags["runs"]["alpha"]
    assert answer["tasks"]["leak"] == ["success"]
    assert SECRET not in printed
    assert PIN not in printed
    # The step's lines reach the task log (through Airflow's logging, which masks too).
    assert "token: *** pin: ***" in printed
    assert "on stderr: ***" in printed


@pytest.mark.slow
def test_carriage_returns_arrive_intact(two_dags: dict[str, Any]) -> None:
    root: Path = two_dags["root"]
    output = root / "alpha" / run_folder(HOSTILE_RUN_ID) / "carriage" / "output"
    # Jinja would turn the env value's \r into \n and drop its last newline
    assert store.read(str(output)) == "a\rb\r\nc\n|x\ry\r\n"


@pytest.mark.slow
def test_local_mode_runs_steps_with_the_compiling_interpreter(two_dags: dict[str, Any]) -> None:
    text = two_dags["files"]["alpha"].read_text(encoding="utf-8")
    assert f'"python": {json.dumps(sys.executable)}' in text


# ------------------------------------------------------------------ run folders


@pytest.mark.parametrize(
    ("run_id", "folder"),
    [
        ("manual__2024-05-01T00:00:00+00:00", "manual__2024-05-01T00:00:00+00:00"),
        ("scheduled__2024-05-01T00:00:00+00:00", "scheduled__2024-05-01T00:00:00+00:00"),
        (".", "%2E"),
        ("..", "%2E."),
        (".hidden", "%2Ehidden"),
        ("a/../../b", "a%2F..%2F..%2Fb"),
        ("50%", "50%25"),
        ("ü b", "%C3%BC%20b"),
        ("back\\slash", "back%5Cslash"),
    ],
)
def test_a_run_folder_is_one_safe_path_segment(run_id: str, folder: str) -> None:
    assert run_folder(run_id) == folder


def test_an_empty_run_id_has_no_folder() -> None:
    with pytest.raises(ValueError, match="empty run id"):
        run_folder("")


@given(st.text(min_size=1))
def test_run_folders_never_leave_their_parent_and_never_coincide(run_id: str) -> None:
    folder = run_folder(run_id)
    assert "/" not in folder and "\\" not in folder and "\x00" not in folder
    assert folder not in (".", "..") and not folder.startswith(".")
    assert folder.isascii()
    # Percent-decoding gives the run id back: two run ids never share a folder.
    raw = bytearray()
    i = 0
    while i < len(folder):
        if folder[i] == "%":
            raw.append(int(folder[i + 1 : i + 3], 16))
            i += 3
        else:
            raw += folder[i].encode()
            i += 1
    assert raw.decode("utf-8", "surrogatepass") == run_id


def test_the_dag_file_holds_the_same_run_folder_function(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    path = write_pipeline(tmp_path, BETA.replace("from pipec import pipeline, step\n", ""))
    dag_file = compile_to(str(path), dags, ["operator=local", "artifact_root=/srv/a"])
    scope: dict[str, Any] = {}
    text = dag_file.read_text(encoding="utf-8")
    start = text.index("def _run_folder(")
    end = text.index("\n\n\n", start)
    exec(text[start:end], scope)  # the helper alone: plain Python, no Airflow needed
    for run_id in ("..", "a/../../b", "manual__2024-05-01T00:00:00+00:00", "ü b"):
        assert scope["_run_folder"](run_id) == run_folder(run_id)
    assert f'=/srv/a/{dag_file.stem}/{{{{ pipec_run_folder(run_id) }}}}/make/output"' in text


# ------------------------------------------------------------------ the interpreter


def test_local_mode_checks_the_interpreter_can_import_pipec(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path, BETA.replace("from pipec import pipeline, step\n", ""))
    without_pipec = str(tool_python("airflow"))  # an ordinary Python: no pipec installed
    base = ["operator=local", "artifact_root=/srv/a"]
    with pytest.raises(SettingsError) as caught:
        driver.compile_ref(str(path), "airflow", [*base, f"python={without_pipec}"])
    message = str(caught.value)
    assert without_pipec in message and "cannot import pipec" in message
    with pytest.raises(SettingsError, match="no such interpreter"):
        driver.compile_ref(str(path), "airflow", [*base, "python=/nonexistent/python3"])
    # With a code root of its own the DAG may run on another machine: a warning, not an error.
    compiled = driver.prepare(
        str(path), "airflow", [*base, f"python={without_pipec}", "code_root=/opt/code"]
    )
    (warning,) = [w for w in compiled.warnings if w.code == "W003"]
    assert without_pipec in warning.message
    # A container's interpreter is in its image: nothing to check here.
    driver.compile_ref(str(path), "airflow", ["artifact_root=/srv/a", "image=i", "python=nope"])


# ------------------------------------------------------------------ the environment


@pytest.mark.parametrize("mode", ["kubernetes", "docker", "local"])
def test_a_constant_too_long_for_the_environment_is_an_error(tmp_path: Path, mode: str) -> None:
    path = write_pipeline(
        tmp_path,
        """
        @step
        def use(rows: list[float], tag: str) -> float:
            return 0.0

        @pipeline
        def huge() -> None:
            use([0.125] * 30000, "small")
        """,
    )
    settings = [f"operator={mode}", "artifact_root=/srv/a", "image=i", f"python={sys.executable}"]
    with pytest.raises(DiagnosticError) as caught:
        driver.compile_ref(str(path), "airflow", settings)
    (problem,) = caught.value.diagnostics
    assert problem.code == "U001"
    assert "input 'rows' of step 'use'" in problem.message and "128 KiB" in problem.message
    assert "parameter" in problem.hint and "artifact" in problem.hint


@pytest.mark.parametrize("mode", ["kubernetes", "docker", "local"])
def test_carriage_returns_in_env_values_survive_the_dag_file(tmp_path: Path, mode: str) -> None:
    path = write_pipeline(
        tmp_path,
        """
        @step(env={"CR": "a\\rb\\r\\nc $HOME\\n"})
        def show(text: str) -> None:
            pass

        @pipeline
        def crlf() -> None:
            show("x\\ry\\r\\n")
        """,
    )
    dags = tmp_path / "dags"
    settings = [f"operator={mode}", "artifact_root=/srv/a", "image=i", f"python={sys.executable}"]
    compile_to(str(path), dags, settings)
    result = check(["env", str(dags)], airflow_env(tmp_path / "home", dags))
    assert result["errors"] == {}
    env = result["env"]["crlf"]["show"]
    dollar = "$$" if mode == "kubernetes" else "$"  # the kubelet turns `$$` back into `$`
    assert env["CR"] == f"a\rb\r\nc {dollar}HOME\n"
    assert json.loads(env["PIPEC_INPUT_text"]) == "x\ry\r\n"
