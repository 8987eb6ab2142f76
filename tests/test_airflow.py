"""The airflow target's DAG files: they import through Airflow's own DagBag with zero errors (in
the separate Airflow tool environment), their task graph matches the pipeline, output is
deterministic, and what a mode cannot express is a diagnostic."""

from __future__ import annotations

import ast
import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pipec import driver
from pipec.backends.airflow.pysource import py_str, templated_text
from pipec.backends.airflow.settings import AirflowSettings
from pipec.backends.common import docker, k8s
from pipec.backends.settings import SettingsError
from pipec.ir import graph
from pipec.ir.diagnostics import DiagnosticError
from pipec.ir.model import Resources
from tests.airflow_helpers import airflow_env, check, compile_to
from tests.conformance.cases import SHAPES_SOURCE, Project
from tests.conftest import EXAMPLES, REPO, tool_python
from tests.helpers import prepared, write_pipeline

MODES = ("kubernetes", "docker", "local")
# Docker requests GPUs by count only, and cannot size storage: training asks for a GPU type,
# etl for disk (golden/etl/airflow is compiled with the repository's operator=kubernetes).
DOCKER_CANNOT = {"training", "etl"}


def _ref(example: Path) -> str:
    return example.relative_to(REPO).as_posix()


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every example in every mode it can express, imported by one DagBag per mode."""
    results: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        dags = tmp_path_factory.mktemp(f"dags-{mode}")
        for example in EXAMPLES:
            if mode == "docker" and example.stem in DOCKER_CANNOT:
                continue
            settings = [f"operator={mode}"]
            if mode == "docker":
                settings.append("artifact_root=/srv/pipec-artifacts")
            compile_to(_ref(example), dags, settings)
        home = tmp_path_factory.mktemp(f"home-{mode}")
        results[mode] = check(["import", str(dags)], airflow_env(home, dags))
    return results


@pytest.mark.parametrize("mode", MODES)
def test_every_example_imports_without_errors(imported: dict[str, Any], mode: str) -> None:
    result = imported[mode]
    assert result["errors"] == {}
    expected = {e.stem for e in EXAMPLES} - (DOCKER_CANNOT if mode == "docker" else set())
    ids = {"nested": "nested_report"}
    assert set(result["dags"]) == {ids.get(name, name) for name in expected}


def test_training_maps_every_feature(imported: dict[str, Any]) -> None:
    dag = imported["kubernetes"]["dags"]["training"]
    tasks = dag["tasks"]
    assert dag["schedule"] == "0 3 * * *"
    assert dag["catchup"] is False
    assert dag["start_date"] == "2024-01-01T00:00:00+00:00"
    assert dag["params"] == {"n": 100, "lr": 0.01, "lrs": [0.1, 0.01]}
    assert tasks["split"]["retries"] == 2
    assert tasks["split"]["retry_delay"] == 0
    assert tasks["split"]["execution_timeout"] == 600
    # The branch is the direct upstream of each side; the join (best) does not depend on it.
    assert tasks["condition_1"]["operator"] == "BranchPythonOperator"
    assert "condition_1" in tasks["deploy"]["upstream"]
    assert "condition_1" in tasks["notify"]["upstream"]
    assert "condition_1" not in tasks["best"]["upstream"]
    # The loop is a mapped task group over the parameter; its tasks are capped by parallelism.
    assert tasks["train_2"]["group"] == "loop_1"
    assert tasks["train_2"]["max_active_tis_per_dagrun"] == 2
    assert tasks["train_2"]["upstream"] == ["loop_1-items", "split"]
    assert tasks["evaluate_2"]["upstream"] == ["split", "train_2"]
    # Fan-in after a mapped group may see skipped (empty) iterations and still runs.
    assert tasks["best"]["upstream"] == ["evaluate_2"]
    assert tasks["best"]["trigger_rule"] == "none_failed"
    assert tasks["cleanup"]["upstream"] == ["train"]
    assert tasks["cleanup"]["trigger_rule"] == "all_success"


def test_nested_pipelines_are_task_groups(imported: dict[str, Any]) -> None:
    tasks = imported["kubernetes"]["dags"]["nested_report"]["tasks"]
    assert tasks["make_shards"]["group"] == "word_count"
    assert tasks["count_words"]["group"] == "loop_1"
    assert tasks["make_shards_2"]["group"] == "word_count_2"
    # The inner condition sits in the outer one's otherwise branch: both branch tasks are its
    # direct upstreams, so either one can skip it.
    assert {"condition_1", "condition_2"} <= set(tasks["publish_2"]["upstream"])
    assert tasks["condition_2"]["upstream"] == ["condition_1", "total_2"]


def test_output_is_deterministic_and_machine_free(tmp_path: Path) -> None:
    for example in EXAMPLES:
        first = driver.compile_ref(_ref(example), "airflow")
        second = driver.compile_ref(_ref(example), "airflow")
        assert first == second
        (text,) = first.values()
        assert str(REPO) not in text
        ast.parse(text)


def test_local_mode_defaults_code_root_to_the_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    bundle = driver.compile_ref(
        "examples/hello.py", "airflow", ["operator=local", "code_root=null"]
    )
    (text,) = bundle.values()
    assert f'"--code-root", {py_str(str(REPO))}' in text


def test_docker_mode_reports_gpu_type() -> None:
    with pytest.raises(DiagnosticError) as caught:
        driver.compile_ref("examples/training.py", "airflow", ["operator=docker"])
    messages = [d.message for d in caught.value.diagnostics]
    assert any("GPU type with operator=docker" in m and "'train'" in m for m in messages)


def test_artifact_root_is_required_and_jinja_free() -> None:
    with pytest.raises(SettingsError, match="artifact_root"):
        driver.compile_ref("examples/hello.py", "airflow", ["artifact_root=null"])
    with pytest.raises(SettingsError, match="must not contain"):
        driver.compile_ref("examples/hello.py", "airflow", ["artifact_root=/x/{{ run_id }}"])


def test_nested_foreach_and_multi_output_reads_import_in_every_mode(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The shapes Airflow lacks natively (flattened inner foreach groups, one XCom per output
    read) make DAGs Airflow imports in every mode; tests/conformance/test_run.py runs them."""
    project = Project.create(tmp_path_factory.mktemp("project"))
    ref = project.write(SHAPES_SOURCE, "shapes")
    for mode in MODES:
        dags = tmp_path_factory.mktemp(f"shapes-{mode}")
        settings = [f"operator={mode}", "artifact_root=/srv/pipec-artifacts", "image=img:1"]
        compile_to(ref, dags, settings)
        result = check(["import", str(dags)], airflow_env(tmp_path_factory.mktemp("home"), dags))
        assert result["errors"] == {}, mode
        (dag,) = result["dags"].values()
        tasks = dag["tasks"]
        # Each inner foreach is a mapped group of its own, over the iterations its -items task
        # lists; it waits for the outer step it loops over, and the outer fan-in waits for it.
        assert tasks["cell"]["group"] == "loop_3"
        assert tasks["row_width"]["group"] == "loop_2"
        assert tasks["loop_2-items"]["group"] is None
        assert "widths" in tasks["loop_2-items"]["upstream"]
        assert "row_width" in tasks["row_total"]["upstream"]
        assert tasks["row_total"]["trigger_rule"] == "none_failed"
        # The condition reads two outputs of one step, each its own XCom.
        assert tasks["condition_1"]["upstream"] == ["summarize"]


_RETRIEVE = """
import io, json, sys, tarfile
from unittest import mock
from airflow.dag_processing.dagbag import DagBag

(dag,) = DagBag(dag_folder=sys.argv[1]).dags.values()
task = dag.get_task("summarize")
text = b'{"high":1209,"low":409}'  # what the runtime writes for two exported outputs
archive = io.BytesIO()
with tarfile.open(fileobj=archive, mode="w") as tar:
    member = tarfile.TarInfo("pipec-xcom.json")
    member.size = len(text)
    tar.addfile(member, io.BytesIO(text))
client = mock.Mock()
client.get_archive.return_value = ([archive.getvalue()], {"size": len(text), "name": member.name})
with mock.patch.object(type(task), "cli", client):
    print("retrieved: " + json.dumps(task._copy_from_docker("id", task.retrieve_output_path)))
"""


def test_docker_mode_reads_the_xcom_file_as_json(tmp_path: Path) -> None:
    """DockerOperator unpickles its retrieved output file by default; the runtime writes JSON,
    so a task that hands Airflow a value uses the file's JSON-reading subclass. The operator's
    own retrieval code runs here, with Docker's archive call answered by a stand-in."""
    project = Project.create(tmp_path / "project")
    ref = project.write(SHAPES_SOURCE, "shapes")
    dags = tmp_path / "dags"
    compile_to(ref, dags, ["operator=docker", "artifact_root=/srv/pipec-artifacts", "image=i:1"])
    done = subprocess.run(
        [str(tool_python("airflow")), "-c", _RETRIEVE, str(dags)],
        env=airflow_env(tmp_path / "home", dags),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("retrieved: ")]
    assert json.loads(line.removeprefix("retrieved: ")) == {"high": 1209, "low": 409}


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (
            """
            with foreach(xs) as x:
                with when(x > 1):
                    with foreach([3, 4]) as y:
                        one(x=x, y=y)
            """,
            "a foreach inside a when/otherwise inside a foreach",
        ),
        (
            """
            with foreach(xs) as x:
                with foreach([3, 4]) as y:
                    with when(x > 1):
                        one(x=x, y=y)
            """,
            "tests a value of an enclosing foreach",
        ),
        (
            """
            with foreach(xs) as x:
                got = one(x=x, y=1)
            with foreach(collect(got)) as y:
                one(x=y, y=2)
            """,
            "a foreach over a collect()",
        ),
    ],
)
def test_shapes_airflow_cannot_lower_are_diagnostics(tmp_path: Path, body: str, what: str) -> None:
    source = """
        @step
        def one(x: int, y: int) -> int:
            return x + y

        @pipeline
        def grid(xs: list[int] = [1, 2]) -> None:
    """
    path = write_pipeline(tmp_path, source + textwrap.indent(textwrap.dedent(body), " " * 12))
    with pytest.raises(DiagnosticError) as caught:
        driver.compile_ref(str(path), "airflow", ["artifact_root=/srv/artifacts", "image=img"])
    (problem,) = caught.value.diagnostics
    assert problem.code == "U001"
    assert what in problem.message


def test_templated_text_wraps_only_what_jinja_would_touch() -> None:
    assert templated_text("plain/path") == "plain/path"
    assert templated_text("has {{ x }}") != "has {{ x }}"
    assert templated_text("run.sh", (".sh",)) != "run.sh"
    assert templated_text("run.sh") == "run.sh"
    # Jinja turns \r and \r\n into \n and drops a trailing newline.
    assert templated_text("a\rb") != "a\rb"
    assert templated_text("line\n") != "line\n"
    assert templated_text("two\nlines") == "two\nlines"


HOSTILE_SOURCE = """
    @step
    def echo(text: str, tag: str) -> str:
        return text + tag

    @pipeline(name="hostile {{ run_id }} \\"; $(id)")
    def hostile(text: str = "x\\"; echo $(id) {{ 7 * 7 }}") -> None:
        echo.with_options(
            name="{% raw %} ünï \\u2028 ✓ '\\"\\\\ step", env={"E": "{{ x }}\\nends.sh"}
        )(text=text, tag="{# c #} ends.env")
"""


@pytest.mark.parametrize("mode", MODES)
def test_hostile_names_and_values_import_in_every_mode(tmp_path: Path, mode: str) -> None:
    path = write_pipeline(tmp_path, HOSTILE_SOURCE)
    dags = tmp_path / "dags"
    compile_to(str(path), dags, [f"operator={mode}", "image=img:1", "artifact_root=/srv/a"])
    result = check(["import", str(dags)], airflow_env(tmp_path / "home", dags))
    assert result["errors"] == {}
    (dag,) = result["dags"].values()
    assert dag["params"] == {"text": 'x"; echo $(id) {{ 7 * 7 }}'}
    (task,) = dag["tasks"].values()
    assert task["display_name"] == "{% raw %} ünï \u2028 ✓ '\"\\ step"


def test_kubernetes_resources_gpus_and_secrets_are_spelled_natively() -> None:
    (text,) = driver.compile_ref("examples/training.py", "airflow").values()
    assert 'requests={"cpu": "4", "memory": "16Gi"}' in text
    assert 'limits={"memory": "16Gi", "nvidia.com/gpu": "1"}' in text
    assert 'node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"}' in text
    assert 'Secret("env", "REGISTRY_TOKEN", "pipec-secrets", "REGISTRY_TOKEN")' in text


def test_kubernetes_pods_are_what_common_k8s_renders(tmp_path: Path) -> None:
    """The pod the provider's KubernetesPodOperator builds for each step (its own builder, dry
    run) has exactly the resources, placement, secret env and deadline of `k8s.pod_needs`: the
    same dicts the kubeflow target spells as its platform config."""
    dags = tmp_path / "dags"
    compile_to("examples/training.py", dags)
    result = check(["pods", str(dags), "training"], airflow_env(tmp_path / "home", dags))
    assert result["errors"] == {}
    pipeline, settings, _ = prepared("examples/training.py", "airflow")
    assert isinstance(settings, AirflowSettings)
    expected = {}
    for step in graph.steps(pipeline):
        pod = k8s.pod_needs(step.resources, step.secrets, step.timeout, settings)
        expected[step.id] = {
            "resources": pod.resources,
            "nodeSelector": pod.node_selector,
            "tolerations": pod.tolerations,
            "secretEnv": pod.secret_env,
            "activeDeadlineSeconds": pod.active_deadline_seconds,
        }
    assert result["pods"] == expected
    train = result["pods"]["train"]
    assert train["resources"] == {
        "requests": {"cpu": "4", "memory": "16Gi"},
        "limits": {"memory": "16Gi", "nvidia.com/gpu": "1"},
    }
    assert train["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert result["pods"]["split"]["activeDeadlineSeconds"] == 600


def test_the_old_secret_setting_name_points_at_the_new_one() -> None:
    with pytest.raises(SettingsError, match=r"kubernetes_secret .*\(did you mean secret_name\?\)"):
        driver.compile_ref("examples/training.py", "airflow", ["kubernetes_secret=s"])
    (text,) = driver.compile_ref(
        "examples/training.py", "airflow", ["secret_name=team-secrets", "gpu_toleration=null"]
    ).values()
    assert 'Secret("env", "REGISTRY_TOKEN", "team-secrets", "REGISTRY_TOKEN")' in text
    assert "tolerations" not in text


def test_docker_containers_follow_the_same_policy_in_dockers_terms() -> None:
    needs = docker.container_needs(Resources(cpu=0.5, memory="1Gi", gpu=2), "/srv/artifacts")
    # CPU as a weight (what the kubelet gives a request, and DockerOperator makes of `cpus`).
    assert needs.cpu_shares == 512
    assert docker.container_needs(Resources(cpu=0.0001), None).cpu_shares == 2
    assert needs.memory_bytes == 2**30
    assert needs.device_requests() == [{"Count": 2, "Capabilities": [["gpu"]]}]
    assert needs.bind_mounts == ("/srv/artifacts",)
    assert docker.container_needs(Resources(), "s3://bucket/x") == docker.ContainerNeeds()


def test_docker_and_local_secrets_come_from_airflow_variables(tmp_path: Path) -> None:
    path = write_pipeline(
        tmp_path,
        """
        @step(secrets=["API_TOKEN"])
        def call() -> None:
            pass

        @pipeline
        def secretive() -> None:
            call()
        """,
    )
    base = ["artifact_root=/srv/a", "image=img:1"]
    (docker,) = driver.compile_ref(str(path), "airflow", [*base, "operator=docker"]).values()
    assert '"API_TOKEN": "{{ var.value.API_TOKEN }}"' in docker
    (local,) = driver.compile_ref(str(path), "airflow", [*base, "operator=local"]).values()
    # Read by the task callable at run time: never rendered into a template field.
    assert '"secrets": ["API_TOKEN"]' in local
    assert "var.value" not in local


def test_a_gated_step_waiting_on_another_conditions_step_is_a_diagnostic(
    tmp_path: Path,
) -> None:
    # Inside a foreach a condition's side is skipped through `all_success`; a step that must
    # also tolerate a skipped `.after()` target cannot have both rules.
    path = write_pipeline(
        tmp_path,
        """
        @step
        def show(x: int) -> int:
            return x

        @pipeline
        def waiting(flag: bool = True, xs: list[int] = [1, 2]) -> None:
            with when(flag):
                first = show(0)
            with foreach(xs) as x:
                with when(x > 1):
                    show.with_options(name="late")(x).after(first)
        """,
    )
    with pytest.raises(DiagnosticError) as caught:
        driver.compile_ref(str(path), "airflow", ["artifact_root=/srv/artifacts", "image=i"])
    (problem,) = caught.value.diagnostics
    assert "waits for a step another condition may skip" in problem.message
    assert "'late'" in problem.message
