"""The kubernetes target's manifests: every object of every example (and of a pipeline full of
hostile names and values) passes `kubernetes-validate --strict` for Kubernetes 1.30 to 1.37,
every pod meets the restricted Pod Security Standard (and pipec's read-only root), the RBAC is
exactly what the driver uses, values reach the process verbatim after the kubelet's `$`
expansion, and the step templates are what the driver creates at run time."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipec import driver
from pipec.backends.base import Bundle
from pipec.backends.files import write_files
from pipec.backends.kubernetes import driver as k8s_driver
from pipec.backends.kubernetes import manifests, names, pods
from pipec.backends.runner.executor import Launch
from pipec.backends.runtime import invocation
from tests.conftest import EXAMPLES, REPO, tool_python
from tests.helpers import write_pipeline
from tests.k8s_standin.expand import expand
from tests.k8s_standin.pss import pipec_violations, pod_templates, violations
from tests.k8s_standin.validate import VERSIONS, validate_files

HOSTILE_SOURCE = """
    @step
    def echo(text: str, tag: str) -> str:
        return text + tag

    @pipeline(name="hostile {{ run_id }} \\"; $(id) yes: no")
    def hostile(text: str = "x\\"; echo $(HOME) $$ {{ 7 * 7 }} \\n- null: ~") -> None:
        echo.with_options(
            name="{% raw %} ünï \\u2028 ✓ '\\"\\\\ step",
            env={"E": "$(HOME)\\nends.sh", "F": "$$(x) 'no' #"},
            secrets=["API_TOKEN"],
            timeout=0.5,
        )(text=text, tag="--- ends.env: [1, {a: 2}]")
"""


def _ref(example: Path) -> str:
    return example.relative_to(REPO).as_posix()


def _documents(bundle: Bundle) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, text in sorted(bundle.items()):
        for doc in yaml.safe_load_all(text):
            found.append((name, doc))
    return found


@pytest.fixture(scope="module")
def bundles() -> dict[str, Bundle]:
    return {p.stem: driver.compile_ref(_ref(p), "kubernetes") for p in EXAMPLES}


def test_every_object_validates_strictly_for_kubernetes_1_30_to_1_37(
    bundles: dict[str, Bundle], tmp_path: Path
) -> None:
    python = tool_python("kubernetes")
    files: list[Path] = []
    for example, bundle in bundles.items():
        write_files(bundle, tmp_path / example)
        files += sorted((tmp_path / example).rglob("*.yaml"))
    assert len(files) > 3 * len(bundles)
    assert validate_files(python, files) == {}


def test_the_validator_rejects_what_the_api_would(tmp_path: Path) -> None:
    """The check above can fail: a field the schema does not know, a wrong type."""
    python = tool_python("kubernetes")
    bundle = driver.compile_ref(_ref(EXAMPLES[0]), "kubernetes")
    bad = bundle["3-driver.yaml"].replace("backoffLimit:", "backofLimit:", 1)
    (tmp_path / "a.yaml").write_text(bad, encoding="utf-8")
    failures = validate_files(python, [tmp_path / "a.yaml"])
    assert set(failures) == set(VERSIONS) and "backofLimit" in failures["1.30.0"]


def test_every_pod_meets_the_restricted_pod_security_standard(
    bundles: dict[str, Bundle],
) -> None:
    checked = 0
    for example, bundle in bundles.items():
        for name, doc in _documents(bundle):
            for spec in pod_templates(doc):
                assert pipec_violations(spec) == [], f"{example}/{name}"
                checked += 1
    assert checked == sum(1 + sum(n.startswith("steps/") for n in b) for b in bundles.values())


def test_the_pss_check_can_fail() -> None:
    assert violations({"containers": [{"name": "c"}]}) == [
        "container 'c' must set allowPrivilegeEscalation=false",
        "container 'c' must drop capabilities ALL",
        "container 'c' must run as non-root (runAsNonRoot=true)",
        "container 'c' has no seccompProfile (RuntimeDefault or Localhost)",
    ]
    spec = {"containers": [], "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}
    assert violations(spec) == ["volume 'h' has type hostPath"]


def test_files_rbac_and_the_plan(bundles: dict[str, Bundle]) -> None:
    training = bundles["training"]
    assert sorted(n for n in training if not n.startswith("steps/")) == [
        "1-rbac.yaml",
        "2-plan.yaml",
        "3-driver.yaml",
    ]
    account, role, binding = yaml.safe_load_all(training["1-rbac.yaml"])
    assert account["kind"] == "ServiceAccount" and role["kind"] == "Role"
    assert role["rules"] == [
        {
            "apiGroups": ["batch"],
            "resources": ["jobs"],
            "verbs": ["create", "delete", "get", "list", "watch"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    ]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "pipec-driver", "namespace": "ml-pipelines"}
    ]
    assert {d["metadata"]["namespace"] for _, d in _documents(training)} == {"ml-pipelines"}
    cron = yaml.safe_load(training["3-driver.yaml"])
    assert cron["kind"] == "CronJob"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["schedule"] == "0 3 * * *"
    assert cron["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 3
    assert yaml.safe_load(bundles["hello"]["3-driver.yaml"])["kind"] == "Job"


def test_the_plan_configmap_is_what_the_driver_reads(tmp_path: Path) -> None:
    compiled = driver.prepare(_ref(REPO / "examples" / "training.py"), "kubernetes")
    plan = compiled.backend.plan(compiled.pipeline)
    built = manifests.build(plan, compiled.backend.settings, schedule=None)
    data = built.plan["data"]
    for key, text in data.items():
        (tmp_path / key).write_text(text, encoding="utf-8")
    read_plan, settings = k8s_driver.read_config(tmp_path)
    assert read_plan == plan and settings == compiled.backend.settings
    assert built.plan["immutable"] is True
    assert (
        built.plan["metadata"]["name"]
        == built.driver["spec"]["template"]["spec"]["volumes"][-1]["configMap"]["name"]
    )


def test_a_large_plan_is_gzipped_and_read_back(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(manifests, "PLAIN_PLAN_LIMIT", 100)
    compiled = driver.prepare(_ref(REPO / "examples" / "sweep.py"), "kubernetes")
    plan = compiled.backend.plan(compiled.pipeline)
    built = manifests.build(plan, compiled.backend.settings, schedule=None)
    assert manifests.PLAN_KEY not in built.plan["data"]
    # The kubelet writes binaryData decoded into the mounted file.
    import base64

    packed = base64.b64decode(built.plan["binaryData"][manifests.PLAN_GZIP_KEY])
    (tmp_path / manifests.PLAN_GZIP_KEY).write_bytes(packed)
    (tmp_path / manifests.SETTINGS_KEY).write_text(built.plan["data"]["settings.json"])
    assert k8s_driver.read_config(tmp_path)[0] == plan


def test_hostile_names_and_values_validate_and_arrive_verbatim(tmp_path: Path) -> None:
    python = tool_python("kubernetes")
    path = write_pipeline(tmp_path, HOSTILE_SOURCE)
    bundle = driver.compile_ref(str(path), "kubernetes", ["image=img:1", "volume=v"])
    out = tmp_path / "out"
    write_files(bundle, out)
    assert validate_files(python, sorted(out.rglob("*.yaml"))) == {}
    for _, doc in _documents(bundle):
        for spec in pod_templates(doc):
            assert pipec_violations(spec) == []
    (step_file,) = [n for n in bundle if n.startswith("steps/")]
    job = yaml.safe_load(bundle[step_file].split("\n", 3)[3])
    container = job["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = expand(var["value"], env)
    assert env["E"] == "$(HOME)\nends.sh" and env["F"] == "$$(x) 'no' #"
    assert {
        "name": "API_TOKEN",
        "valueFrom": {"secretKeyRef": {"key": "API_TOKEN", "name": "pipec-secrets"}},
    } in container["env"]
    args = [expand(a, env) for a in container["args"]]
    parsed = invocation.parse(args)
    assert parsed.inputs == {"tag": "{input:tag}", "text": "{input:text}"}
    assert job["spec"]["template"]["spec"]["activeDeadlineSeconds"] == 1
    plan = json.loads(yaml.safe_load(bundle["2-plan.yaml"])["data"]["plan.json"])
    assert plan["params"][0]["default"] == 'x"; echo $(HOME) $$ {{ 7 * 7 }} \n- null: ~'
    (echo,) = [n for n in plan["nodes"].values() if n["kind"] == "step"]
    assert echo["inputs"]["tag"]["value"] == "--- ends.env: [1, {a: 2}]"


def test_settings_problems_are_one_line_and_exit_2(tmp_path: Path) -> None:
    pipec = str(REPO / ".venv" / "bin" / "pipec")
    cases = {
        "namespace=Prod_1": "is not a Kubernetes name",
        "artifact_root=/data": "is not under volume_path",
        "volume=": "is not a Kubernetes name",
        "driver=elsewhere": "driver",
        "image=": "must not be blank",  # the shared ContainerSettings check
        "image= python:3.12": "is not an image reference",  # surrounding spaces
    }
    for setting, words in cases.items():
        done = subprocess.run(
            [
                pipec,
                "compile",
                "examples/hello.py",
                "--target",
                "kubernetes",
                "--set",
                setting,
                "--set",
                "volume=v" if not setting.startswith("volume") else "namespace=ok",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 2, (setting, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
        assert words in done.stderr, (setting, done.stderr)


def test_artifacts_need_a_root_or_a_volume(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path, HOSTILE_SOURCE)
    pipec = str(REPO / ".venv" / "bin" / "pipec")
    for extra, words in (
        ([], "needs somewhere to keep step outputs"),
        (["--set", "artifact_root=/data"], "set `volume`"),
    ):
        done = subprocess.run(
            [pipec, "compile", path.name, "--target", "kubernetes", "--set", "image=i", *extra],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 2 and words in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_step_templates_are_what_the_driver_creates(tmp_path: Path) -> None:
    """The executor's Job for an attempt is the template with its placeholders filled."""
    from pipec.backends.kubernetes.executor import JobExecutor

    kubernetes = pytest.importorskip("kubernetes")
    compiled = driver.prepare(_ref(REPO / "examples" / "training.py"), "kubernetes")
    backend = compiled.backend
    plan = backend.plan(compiled.pipeline)
    step = plan.steps["split"]
    template = manifests.template(plan, step, backend.settings)
    run_id = "20250101-000000-abcdef"
    api = kubernetes.client.ApiClient()
    executor = JobExecutor(api, backend.settings, plan.pipeline.id, run_id)
    data_uri = f"/pipec/{run_id}/load/output"
    argv = [
        a.replace("{input:data}", f"artifact:{data_uri}")
        .replace("{run_id}", run_id)
        .replace("{iteration}", "")
        .replace("{project_root}", "/home/me/project")
        .replace("{artifact_root}", "/pipec")
        for a in step.runtime_args
    ]
    env = {
        "PIPEC_RUN_ID": run_id,
        "PIPEC_STEP_ID": "split",
        "PIPEC_ITERATION": "",
        "PIPEC_ATTEMPT": "2",
    }
    launch = Launch(
        step=step,
        label="split",
        attempt=2,
        argv=argv,
        env=env,
        log_path=tmp_path / "log",
        cwd=tmp_path,
    )
    name = names.step_job_name(run_id, "split", [], 3)
    made = executor.render(launch, name, "", 3)
    filled = json.loads(
        json.dumps(template)
        .replace("{input:data}", f"artifact:{data_uri}")
        .replace("{job_name}", name)
        .replace("{run_id}", run_id)
        .replace("{iteration}", "")
        .replace("{attempt}", "2")
        .replace("{job}", "3")
    )
    assert made == filled
    assert made["spec"]["template"]["spec"]["containers"][0]["args"][5] == "/app"
    assert len(name) <= 63 and name.startswith("split-")
    assert made["spec"]["template"]["spec"]["containers"][0]["name"] == pods.STEP_CONTAINER


def test_job_names_fit_and_do_not_meet() -> None:
    long_id = "a" * 48
    seen = set()
    for step_id in (long_id, long_id[:-1] + "b", "x"):
        for iteration in ([], [0], [12, 3], [999999, 999999]):
            name = names.step_job_name("run", step_id, iteration, 1)
            assert len(name) <= 63 and name not in seen
            seen.add(name)


def test_local_only_run_options_are_refused_with_an_in_cluster_driver() -> None:
    done = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "pipec"),
            "run",
            "examples/hello.py",
            "--target",
            "kubernetes",
            "--json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "driver=local" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
