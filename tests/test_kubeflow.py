"""The kubeflow and vertex targets' output: validated by KFP's own proto and loader (in the kfp tool
environment), plus the structure pipec promises — shared components, plumbing across sub-DAGs,
type-correct CEL, platform config only when needed, determinism, and no injection."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipec import driver
from pipec.backends.files import write_files
from pipec.backends.kubeflow import KubeflowBackend, KubeflowSettings
from pipec.backends.settings import SettingsError, load_settings
from pipec.backends.vertex import VertexBackend, VertexSettings, accelerator_name, memory_gb
from pipec.ir.diagnostics import DiagnosticError
from pipec.ir.model import Pipeline
from tests.conftest import EXAMPLES, REPO, tool_python
from tests.helpers import load_ok, write_pipeline

CHECKER = REPO / "tests" / "kfp_check.py"


def _ref(example: Path) -> str:
    return example.relative_to(REPO).as_posix()


def _checker(*args: str) -> None:
    python = tool_python("kfp")
    done = subprocess.run(
        [str(python), str(CHECKER), *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _kubeflow(source: str, tmp_path: Path, **settings: Any) -> dict[str, Any]:
    pipeline = load_ok(tmp_path, source)
    values = {"image": "img:1", **settings}
    bundle = KubeflowBackend(KubeflowSettings(**values)).emit(pipeline)
    documents = list(yaml.safe_load_all(bundle["pipeline.yaml"]))
    platform = documents[1] if len(documents) > 1 else None
    return {"spec": documents[0], "platform": platform, "text": bundle["pipeline.yaml"]}


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def test_every_example_validates_with_kfp(tmp_path: Path) -> None:
    """Strict proto parse + kfp's loader for every pipeline.yaml; aiplatform_v1 for requests."""
    specs: list[str] = []
    jobs: list[str] = []
    schedules: list[str] = []
    for example in EXAMPLES:
        for target in ("kubeflow", "vertex"):
            try:
                bundle = driver.compile_ref(_ref(example), target)
            except DiagnosticError:
                continue  # recorded in the goldens as UNSUPPORTED.txt
            folder = tmp_path / example.stem / target
            write_files(bundle, folder)
            specs.append(str(folder / "pipeline.yaml"))
            if target == "vertex":
                jobs.append(str(folder / "pipeline_job.json"))
                if "schedule.json" in bundle:
                    schedules.append(str(folder / "schedule.json"))
    assert len(specs) >= len(EXAMPLES) + 2
    _checker("spec", *specs)
    for job in jobs:
        _checker("vertex-job", job)
    for schedule in schedules:
        _checker("vertex-schedule", schedule)


def test_the_checker_rejects_unknown_fields(tmp_path: Path) -> None:
    bundle = driver.compile_ref("examples/hello.py", "kubeflow")
    bad = tmp_path / "pipeline.yaml"
    bad.write_text(bundle["pipeline.yaml"] + "", encoding="utf-8")
    data = yaml.safe_load(bundle["pipeline.yaml"])
    data["root"]["dag"]["tasks"]["greet"]["notAField"] = 1
    bad.write_text(yaml.safe_dump(data), encoding="utf-8")
    python = tool_python("kfp")
    done = subprocess.run(
        [str(python), str(CHECKER), "spec", str(bad)], capture_output=True, text=True
    )
    assert done.returncode == 1 and "notAField" in done.stdout


def test_identical_steps_share_one_component_and_executor(tmp_path: Path) -> None:
    result = _kubeflow(
        """
        @step
        def inc(x: int) -> int:
            return x + 1

        @pipeline
        def chain(start: int = 0) -> None:
            x = inc(x=start)
            for _ in range(5):
                x = inc(x=x)
        """,
        tmp_path,
    )
    spec = result["spec"]
    assert len(spec["root"]["dag"]["tasks"]) == 6
    # the first call reads a parameter, the others an output: the same component either way
    assert list(spec["deploymentSpec"]["executors"]) == ["exec-inc"]
    assert list(spec["components"]) == ["comp-inc"]
    assert spec["root"]["dag"]["tasks"]["inc-3"]["dependentTasks"] == ["inc-2"]


def test_the_runtime_command_uses_kfp_placeholders(tmp_path: Path) -> None:
    spec = _kubeflow(
        """
        @step
        def f(name: str, n: int, blob: bytes) -> bytes:
            return blob

        @step
        def make() -> bytes:
            return b""

        @pipeline
        def p(name: str = "x") -> None:
            f(name=name, n=3, blob=make())
        """,
        tmp_path,
        code_root="/srv/code",
    )["spec"]
    container = spec["deploymentSpec"]["executors"]["exec-f"]["container"]
    command = container["command"]
    assert command[0] == "python3" and command[-2:] == ["-m", "pipec.backends.runtime"]
    args = container["args"]
    assert args[args.index("--code-root") + 1] == "/srv/code"
    assert "blob=artifact:{{$.inputs.artifacts['blob'].path}}" in args
    assert "n=value:{{$.inputs.parameters['n']}}" in args
    assert "name=text:{{$.inputs.parameters['name']}}" in args
    assert "output={{$.outputs.artifacts['output'].path}}" in args
    task = spec["root"]["dag"]["tasks"]["f"]
    assert task["inputs"]["parameters"]["n"] == {"runtimeValue": {"constant": 3}}
    assert task["inputs"]["parameters"]["name"] == {"componentInputParameter": "name"}


def test_conditions_loops_and_collect_are_plumbed_through_sub_dags() -> None:
    bundle = driver.compile_ref("examples/nested.py", "kubeflow")
    spec = yaml.safe_load(bundle["pipeline.yaml"])
    components = spec["components"]
    # the first nested pipeline's loop runs over a step output inside the group's sub-DAG: over
    # its entries (runtime/loop_entries.py), written by a task that waits for the step
    group = components["comp-word-count"]["dag"]
    loop_task = group["tasks"]["loop-1"]
    assert loop_task["parameterIterator"] == {
        "itemInput": "pipelinechannel--loop-1-loop-entry",
        "items": {"inputParameter": "pipelinechannel--loop-1-entries-Output"},
    }
    assert loop_task["dependentTasks"] == ["loop-1-entries"]
    entries = group["tasks"]["loop-1-entries"]
    assert entries["dependentTasks"] == ["make-shards"]
    assert entries["inputs"]["parameters"]["items"] == {
        "taskOutputParameter": {"producerTask": "make-shards", "outputParameterKey": "output"}
    }
    # the loop's step reads the item out of the entry
    shard = components["comp-loop-1"]["dag"]["tasks"]["count-words"]["inputs"]["parameters"]
    assert shard["shard"] == {
        "componentInputParameter": "pipelinechannel--loop-1-loop-entry",
        "parameterExpressionSelector": 'parseJson(string_value)["item"]',
    }
    # collect: the loop DAG's output is the list of every iteration's count
    loop = components["comp-loop-1"]
    assert loop["outputDefinitions"]["parameters"]["pipelinechannel--count-words--output"] == {
        "parameterType": "LIST"
    }
    # the group surfaces `total` so the condition at the root can read it
    root = spec["root"]["dag"]["tasks"]
    test = root["condition-1"]["triggerPolicy"]["condition"]
    assert test == (
        "(int(inputs.parameter_values['pipelinechannel--total--output']) > 100) && "
        "(!(inputs.parameter_values['pipelinechannel--mode'] == \"dry-run\"))"
    )
    assert root["condition-1-otherwise"]["triggerPolicy"]["condition"] == f"!({test})"
    assert root["condition-1"]["dependentTasks"] == ["word-count"]
    # the else-if nests a second condition inside the otherwise branch
    inner = components["comp-condition-1-otherwise"]["dag"]["tasks"]
    assert set(inner) == {"condition-2", "condition-2-otherwise"}


def test_platform_spec_only_for_steps_that_need_it(tmp_path: Path) -> None:
    plain = _kubeflow(
        """
        @step
        def f() -> None:
            pass

        @pipeline
        def p() -> None:
            f()
        """,
        tmp_path,
    )
    assert plain["platform"] is None
    bundle = driver.compile_ref("examples/training.py", "kubeflow")
    platform = list(yaml.safe_load_all(bundle["pipeline.yaml"]))[1]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors["exec-split"] == {"activeDeadlineSeconds": "600"}
    assert executors["exec-deploy"]["secretAsEnv"][0]["keyToEnv"] == [
        {"envVar": "REGISTRY_TOKEN", "secretKey": "REGISTRY_TOKEN"}
    ]
    assert executors["exec-train"]["nodeSelector"] == {
        "labels": {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    }


def test_pods_are_spelled_as_the_kfp_sdk_spells_them() -> None:
    """The training example's GPU, secret and timeout steps carry exactly what KFP's own SDK and
    kfp-kubernetes write for the same pod (tests/kfp_check.py sdk-pods), field for field: KFP
    backends before 2.4 read only the numeric resource fields (`cpuRequest`, `memoryLimit`,
    `accelerator.count`), and before 2.5 only `secretName`; later ones prefer the string fields
    and `secretNameParameter`."""
    python = tool_python("kfp")
    done = subprocess.run(
        [str(python), str(CHECKER), "sdk-pods"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sdk = json.loads(done.stdout)

    bundle = driver.compile_ref("examples/training.py", "kubeflow")
    spec, platform = yaml.safe_load_all(bundle["pipeline.yaml"])
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    ours = {
        name: {
            "resources": spec["deploymentSpec"]["executors"][name]["container"].get("resources"),
            "platform": executors.get(name),
        }
        for name in sdk
    }
    assert ours == sdk


def test_hostile_values_stay_data(tmp_path: Path) -> None:
    hostile = "a'b\"c\\n}}{{$.inputs.parameters['x']}}\n---\n- key: value # not yaml"
    result = _kubeflow(
        f"""
        @step
        def f(text: str) -> str:
            return text

        @step(env={{"CR": {CARRIAGE!r}}})
        def g(text: str) -> None:
            pass

        @pipeline(name={hostile.replace(chr(10), " ")!r})
        def p(choice: str = {hostile!r}) -> None:
            out = f(text={hostile!r})
            with when(choice == {hostile!r}):
                g(text=out)
        """,
        tmp_path,
    )
    spec = result["spec"]
    assert spec["pipelineInfo"]["displayName"] == hostile.replace("\n", " ")
    assert spec["root"]["inputDefinitions"]["parameters"]["choice"]["defaultValue"] == hostile
    assert spec["root"]["dag"]["tasks"]["f"]["inputs"]["parameters"]["text"] == {
        "runtimeValue": {"constant": hostile}
    }
    condition = spec["root"]["dag"]["tasks"]["condition-1"]["triggerPolicy"]["condition"]
    literal = condition.split(" == ", 1)[1]
    assert literal == (
        "\"a'b\\\"c\\\\n}}{{$.inputs.parameters['x']}}\\n---\\n- key: value # not yaml\""
    )
    # no placeholder text reaches a command line: values travel as task inputs
    for executor in spec["deploymentSpec"]["executors"].values():
        assert hostile not in " ".join(executor["container"]["args"])
    # carriage returns survive the YAML (the kubelet only turns `$$` into `$`)
    (env,) = spec["deploymentSpec"]["executors"]["exec-g"]["container"]["env"]
    assert env == {"name": "CR", "value": CARRIAGE.replace("$", "$$")}
    emitted = tmp_path / "pipeline.yaml"
    emitted.write_text(result["text"], encoding="utf-8")
    _checker("spec", str(emitted))


CARRIAGE = "a\rb\r\nc\r$HOME\r"


def test_output_is_deterministic() -> None:
    first = driver.compile_ref("examples/training.py", "kubeflow")
    second = driver.compile_ref("examples/training.py", "kubeflow")
    assert first == second
    text = first["pipeline.yaml"]
    assert "&id" not in text and str(REPO) not in text


def test_missing_image_is_a_clear_error(tmp_path: Path) -> None:
    pipeline = load_ok(
        tmp_path,
        """
        @step
        def f() -> None:
            pass

        @pipeline
        def p() -> None:
            f()
        """,
    )
    with pytest.raises(SettingsError, match="needs an image for step f"):
        KubeflowBackend(KubeflowSettings()).emit(pipeline)


def test_features_without_kfp_form_name_the_step(tmp_path: Path) -> None:
    pipeline = load_ok(
        tmp_path,
        """
        @step
        def f() -> int | None:
            return None

        @step
        def g(values: list[int | None]) -> None:
            pass

        @pipeline
        def p() -> None:
            with foreach([1, 2]) as i:
                b = f()
            g(values=collect(b))
        """,
    )
    with pytest.raises(DiagnosticError) as caught:
        KubeflowBackend(KubeflowSettings(image="img")).emit(pipeline)
    messages = [d.message for d in caught.value.diagnostics]
    assert any("carried as JSON text" in m for m in messages)
    assert all(d.code == "U001" for d in caught.value.diagnostics)


COLLECTED_ARTIFACTS = """
    from pathlib import Path

    @step
    def blob(n: int) -> bytes:
        return bytes([n])

    @step
    def sizes(blobs: list[bytes]) -> int:
        return len(blobs)

    @step
    def first(files: list[Path]) -> Path:
        return files[0]

    @step
    def make(n: int) -> Path:
        return Path(str(n))

    @pipeline
    def inner(blobs: list[bytes]) -> None:
        sizes(blobs=blobs)

    @pipeline
    def outer(files: list[int] = [1, 2]) -> None:
        with foreach(files) as n:
            p = make(n=n)
        first(files=collect(p))

    @pipeline
    def p(ns: list[int] = [1, 2]) -> None:
        with foreach(ns) as n:
            b = blob(n=n)
        total = sizes(blobs=collect(b))
        inner(blobs=collect(b))
        with when(total > 1):
            sizes(blobs=collect(b))
        outer()
"""


def _collected(tmp_path: Path) -> Pipeline:
    path = write_pipeline(tmp_path, COLLECTED_ARTIFACTS)
    pipeline, _ = driver.load_checked(f"{path}:p")
    return pipeline


def _artifact_inputs(spec: dict[str, Any], component: str) -> dict[str, Any]:
    found: dict[str, Any] = spec["components"][component]["inputDefinitions"]["artifacts"]
    return found


def test_a_collect_of_artifacts_is_a_kfp_artifact_list(tmp_path: Path) -> None:
    """KFP 2.17's own form (`dsl.Collected` of an artifact): the loop DAG's output and every input
    that carries it are `isArtifactList`; the step reads the list from the executor input."""
    bundle = KubeflowBackend(KubeflowSettings(image="img:1")).emit(_collected(tmp_path))
    spec = yaml.safe_load(bundle["pipeline.yaml"])
    components = spec["components"]
    loop = components["comp-loop-1"]
    assert loop["dag"]["outputs"]["artifacts"] == {
        "pipelinechannel--blob--output": {
            "artifactSelectors": [{"outputArtifactKey": "output", "producerSubtask": "blob"}]
        }
    }
    listed = {
        "artifactType": {"schemaTitle": "system.Artifact", "schemaVersion": "0.0.1"},
        "isArtifactList": True,
    }
    assert loop["outputDefinitions"]["artifacts"]["pipelinechannel--blob--output"] == listed
    assert _artifact_inputs(spec, "comp-sizes") == {"blobs": listed}
    assert _artifact_inputs(spec, "comp-inner") == {"pipelinechannel--blob--output": listed}
    assert _artifact_inputs(spec, "comp-condition-1") == {"pipelinechannel--blob--output": listed}
    assert _artifact_inputs(spec, "comp-first") == {"files": listed}
    assert spec["root"]["dag"]["tasks"]["sizes"]["inputs"]["artifacts"]["blobs"] == {
        "taskOutputArtifact": {
            "outputArtifactKey": "pipelinechannel--blob--output",
            "producerTask": "loop-1",
        }
    }
    executors = spec["deploymentSpec"]["executors"]
    args = executors[components["comp-sizes"]["executorLabel"]]["container"]["args"]
    assert "blobs=kfp-artifacts:blobs" in args
    assert args[args.index("--kfp-executor-input") + 1] == "{{$}}"
    write_files(bundle, tmp_path / "kubeflow")
    _checker("spec", str(tmp_path / "kubeflow" / "pipeline.yaml"))


def test_vertex_takes_a_collect_of_artifacts_too(tmp_path: Path) -> None:
    pipeline = _collected(tmp_path)
    settings = VertexSettings(
        image="img:1", project="p", region="us-central1", pipeline_root="gs://b/root"
    )
    bundle = VertexBackend(settings).emit(pipeline)
    write_files(bundle, tmp_path / "vertex")
    _checker("spec", str(tmp_path / "vertex" / "pipeline.yaml"))
    _checker("vertex-job", str(tmp_path / "vertex" / "pipeline_job.json"))


@pytest.mark.parametrize("storage_class", [None, "fast"])
def test_a_disk_request_is_a_scratch_volume_as_kfp_kubernetes_writes_it(
    tmp_path: Path, storage_class: str | None
) -> None:
    """A disk request is kfp-kubernetes' generic ephemeral volume of that size at
    `scratch_path`, with PIPEC_SCRATCH saying where: field for field what the KFP SDK writes for
    the same volume (tests/kfp_check.py sdk-scratch), and a spec KFP's proto and loader accept.
    The step's own env stays beside it; no ephemeral-storage reaches the container."""
    settings = {"scratch_storage_class": storage_class} if storage_class else {}
    result = _kubeflow(
        """
        @step(resources=Resources(disk="10Gi", cpu=1), env={"STAGE": "prod"})
        def big() -> None:
            pass

        @step
        def small() -> None:
            pass

        @pipeline
        def p() -> None:
            big()
            small()
        """,
        tmp_path,
        **settings,
    )
    python = tool_python("kfp")
    done = subprocess.run(
        [str(python), str(CHECKER), "sdk-scratch", *([storage_class] if storage_class else [])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sdk = json.loads(done.stdout)
    executors = result["spec"]["deploymentSpec"]["executors"]
    platform = result["platform"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert platform == {"exec-big": sdk["platform"]}  # `small` has no disk: no volume
    container = executors["exec-big"]["container"]
    assert container["env"] == [*sdk["env"], {"name": "STAGE", "value": "prod"}]  # sorted
    assert container["resources"] == {"cpuRequest": 1.0, "resourceCpuRequest": "1"}
    assert "env" not in executors["exec-small"]["container"]
    path = tmp_path / "pipeline.yaml"
    path.write_text(result["text"], encoding="utf-8")
    _checker("spec", str(path))


def test_scratch_path_must_be_absolute() -> None:
    assert KubeflowSettings(scratch_path="/data").scratch_path == "/data"
    for bad in ("scratch", "/"):
        with pytest.raises(SettingsError, match="scratch_path"):
            load_settings(KubeflowSettings, "kubeflow", {"scratch_path": bad})


def test_vertex_states_only_its_differences(tmp_path: Path) -> None:
    bundle = driver.compile_ref("examples/iris.py", "vertex")
    assert sorted(bundle) == ["pipeline.yaml", "pipeline_job.json"]

    job = json.loads(bundle["pipeline_job.json"])
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://acme-ml-pipelines/pipec-examples"
    assert job["runtimeConfig"]["parameterValues"] == {
        "cs": [0.01, 0.1, 1.0, 10.0],
        "min_accuracy": 0.9,
    }
    assert job["labels"] == {"team": "ml-platform"}
    assert job["pipelineSpec"] == yaml.safe_load(bundle["pipeline.yaml"])
    assert accelerator_name("nvidia-tesla-t4") == "NVIDIA_TESLA_T4"
    assert memory_gb("14Gi") == 15.032385536
    assert memory_gb("500M") == 0.5
    with pytest.raises(ValueError):  # the options pass reports it first (R002)
        memory_gb("lots")


def test_vertex_machine_shapes_and_schedule(tmp_path: Path) -> None:
    pipeline = load_ok(
        tmp_path,
        """
        @step(resources=Resources(cpu=4, memory="16Gi", gpu=2, gpu_type="nvidia-l4"))
        def train() -> None:
            pass

        @pipeline(schedule="0 3 * * *")
        def p() -> None:
            train()
        """,
    )
    settings = VertexSettings(
        image="img",
        project="p1",
        region="europe-west4",
        pipeline_root="gs://b/r",
        encryption_key="projects/p1/locations/europe-west4/keyRings/k/cryptoKeys/c",
        network="projects/1/global/networks/n",
    )
    bundle = VertexBackend(settings).emit(pipeline)
    spec = yaml.safe_load(bundle["pipeline.yaml"])
    resources = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert resources["cpuLimit"] == 4.0
    assert resources["memoryLimit"] == 17.179869184
    assert resources["accelerator"]["type"] == "NVIDIA_L4"
    assert resources["accelerator"]["count"] == "2"

    job = json.loads(bundle["pipeline_job.json"])
    assert job["encryptionSpec"]["kmsKeyName"].endswith("cryptoKeys/c")
    assert job["network"] == "projects/1/global/networks/n"
    schedule = json.loads(bundle["schedule.json"])
    assert schedule["cron"] == "0 3 * * *"
    assert schedule["createPipelineJobRequest"]["parent"] == "projects/p1/locations/europe-west4"
    assert schedule["createPipelineJobRequest"]["pipelineJob"] == job


def test_vertex_requires_project_region_and_root(tmp_path: Path) -> None:
    pipeline = load_ok(
        tmp_path,
        """
        @step
        def f() -> None:
            pass

        @pipeline
        def p() -> None:
            f()
        """,
    )
    with pytest.raises(SettingsError, match="needs project, region, pipeline_root"):
        VertexBackend(VertexSettings(image="img")).emit(pipeline)
    with pytest.raises(SettingsError, match="unknown setting secret_name"):
        load_settings(VertexSettings, "vertex", {"secret_name": "x"})


def test_vertex_secrets_are_read_by_the_runtime_from_secret_manager() -> None:
    """No Kubernetes Secret on Vertex: the deploy step's runtime reads REGISTRY_TOKEN from Secret
    Manager in `secrets_project` (default: `project`); the spec names it, never holds a value
    (tests/test_runtime_secrets.py runs the runtime against a Secret Manager stand-in)."""
    for settings, project in (([], "acme-ml"), (["secrets_project=vault-proj"], "vault-proj")):
        bundle = driver.compile_ref("examples/training.py", "vertex", settings)
        spec = yaml.safe_load(bundle["pipeline.yaml"])
        executors = spec["deploymentSpec"]["executors"]
        args = executors["exec-deploy"]["container"]["args"]
        at = args.index("--secret-manager")
        assert args[at : at + 4] == ["--secret-manager", project, "--secret", "REGISTRY_TOKEN"]
        others = [e["container"]["args"] for name, e in executors.items() if name != "exec-deploy"]
        assert not any("--secret-manager" in a for a in others)
        assert "secretAsEnv" not in bundle["pipeline.yaml"]


def test_loop_entries_are_written_where_the_list_is_known_and_never_in_a_skipped_branch(
    tmp_path: Path,
) -> None:
    """A loop over a parameter inside another loop gets its entries once, at the root; inside a
    `when` branch they stay in the branch; a loop with no step iterates over its bare list."""
    result = _kubeflow(
        """
        @step
        def show(x: int, y: int) -> int:
            return x + y

        @pipeline
        def grid(xs: list[int] = [1, 2], ys: list[int] = [3], go: bool = True) -> None:
            with foreach(xs) as x:
                with foreach(ys) as y:
                    show(x, y)
                with when(go):
                    with foreach(ys) as z:
                        show(x, z)
            with foreach(ys) as w:
                pass
        """,
        tmp_path,
    )
    spec = result["spec"]
    components = spec["components"]
    root = spec["root"]["dag"]["tasks"]
    assert {"loop-1-entries", "loop-2-entries"} <= set(root)  # the outer loop's and ys's
    assert root["loop-2-entries"]["inputs"]["parameters"]["items"] == {
        "componentInputParameter": "ys"
    }
    assert root["loop-1"]["dependentTasks"] == ["loop-1-entries", "loop-2-entries"]
    branch = components["comp-condition-1"]["dag"]["tasks"]
    assert set(branch) == {"loop-3", "loop-3-entries"}
    assert branch["loop-3"]["dependentTasks"] == ["loop-3-entries"]
    bare = root["loop-4"]
    assert "dependentTasks" not in bare
    assert bare["parameterIterator"]["items"] == {"inputParameter": "pipelinechannel--ys"}
    # (z's step reads both indexes: the outer one passed down through the branch)
    inner = components["comp-loop-3"]["dag"]["tasks"]["show-2"]["inputs"]["parameters"]
    assert inner["pipec-iteration-0"] == {
        "componentInputParameter": "pipelinechannel--loop-1-loop-index"
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(result["text"], encoding="utf-8")
    _checker("spec", str(path))
