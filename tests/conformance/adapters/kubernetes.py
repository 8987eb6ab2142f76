"""The `kubernetes` target's adapter: plain Jobs sequenced by pipec's own scheduler.

Checked with the tools the kubernetes tests use (tests/test_kubernetes.py): every object of every
bundle passes `kubernetes-validate --strict` for Kubernetes 1.30 to 1.37 (tool env
`.venvs/kubernetes`), every pod template meets PodSecurity `restricted` (tests/k8s_standin/pss.py,
what the stand-in's admission enforces), the driver's own reader takes the plan back out of the
ConfigMap (as the kubelet mounts it), and every step's command line parses with the runtime's
parser. A step is what the driver creates for it: its `steps/<id>.yaml` Job template, whose
container env, command and args the kubelet expands (`$(NAME)`, `$$`) before the process starts.

Runs go to the stand-in API server (tests/k8s_standin: strict, runs each Job's pod on Docker; NOT
Kubernetes, see its docstring for what it does not model), one per run, the way
tests/test_kubernetes_run.py runs the examples: `pipec run --target kubernetes` with the
scheduler on this machine (`driver=local`) creating one Job per task attempt (a task is a step,
or a chain of steps fused into one Job: fusion is the target's default). The step image is
the kubernetes test image (`pipec-k8s-test`) plus the run's project at /project, so any project
runs; every image the pipeline names maps to it. A step pod starts with the image's environment
and the pod's HOME/TMPDIR, never the host's: that is `step_env`.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from pipec import driver, loader
from pipec.backends.base import Bundle
from pipec.backends.files import write_files
from pipec.backends.kubernetes import driver as k8s_driver
from pipec.backends.kubernetes import pods
from pipec.backends.runner import plan as runner_plan
from pipec.backends.runtime.invocation import RUNTIME_MODULE, InvocationError, parse
from pipec.ir import graph
from tests.conformance import images, kubelet
from tests.conformance.adapters.local import cli_run, run_options, steps_as_written
from tests.conformance.harness import Harness, Outputs, RunFailed, Seen, StepView
from tests.conftest import tool_python
from tests.k8s_standin.harness import StandIn, build_image, start_standin
from tests.k8s_standin.pss import pipec_violations, pod_templates, violations
from tests.k8s_standin.validate import validate_files

IMAGE = "ghcr.io/acme/pipec-conformance:0.1"  # compiles only: never pulled
CLAIM = "pipec-artifacts"  # the claim the stand-in serves (tests/k8s_standin/harness.py)
NAMESPACE = "default"  # the target's default: the suite's compiles set no namespace
PROJECT_IN_IMAGE = "/project"
RUN_AS_USER = 65532  # the target's default `run_as_user`: the pods' uid
STEP_DIR = "steps/"
_IGNORED = shutil.ignore_patterns(".pipec", "__pycache__", "*.pyc", ".venv", ".venvs", ".git")
# A stand-in for each run-time placeholder of a step template, so the runtime's parser sees a
# command line of the shape the driver gives it (docs/targets/kubernetes.md).
_STAND_INS = {"run_id": "run", "iteration": "/0"}


def _stand_in(name: str) -> str:
    return "value:null" if name.startswith("input:") else _STAND_INS[name]


def step_jobs(bundle: Bundle) -> dict[str, dict[str, Any]]:
    """Step id -> its Job template (`steps/<id>.yaml`, one per step)."""
    return {
        name.removeprefix(STEP_DIR).removesuffix(".yaml"): yaml.safe_load(text)
        for name, text in bundle.items()
        if name.startswith(STEP_DIR)
    }


def container_view(container: Mapping[str, Any]) -> StepView:
    """A container as its process starts: the kubelet expands env values (`value` only: secrets
    and other sources are the cluster's) and then command and args with that env."""
    plain = [(var["name"], var["value"]) for var in container.get("env", []) if "value" in var]
    env = kubelet.container_env(plain)
    line = [kubelet.expand(arg, env) for arg in [*container["command"], *container["args"]]]
    argv = line[line.index(RUNTIME_MODULE) + 1 :]
    return StepView(argv, env)


def plan_of(bundle: Bundle, folder: Path) -> runner_plan.Plan:
    """The plan as the driver reads it: the ConfigMap's keys as the kubelet mounts them (data as
    text, binaryData decoded) into `folder`, then `driver.read_config`."""
    configmap = yaml.safe_load(bundle["2-plan.yaml"])
    folder.mkdir(parents=True)
    for key, text in configmap.get("data", {}).items():
        (folder / key).write_text(text, encoding="utf-8")
    for key, text in configmap.get("binaryData", {}).items():
        (folder / key).write_bytes(base64.b64decode(text))
    plan, _ = k8s_driver.read_config(folder)
    return plan


def _check_pods(label: str, bundle: Bundle) -> None:
    """PodSecurity `restricted` and pipec's read-only root on every pod template, then every
    step's command line through the runtime's parser (placeholders filled as at run time)."""
    for name, text in sorted(bundle.items()):
        for doc in yaml.safe_load_all(text):
            for spec in pod_templates(doc):
                found = pipec_violations(spec)
                assert not found, f"{label}: {name}: {found}"
    for step_id, job in step_jobs(bundle).items():
        (container,) = job["spec"]["template"]["spec"]["containers"]
        view = container_view(container)
        try:
            parse([runner_plan.render(arg, _stand_in) for arg in view.argv])
        except InvocationError as exc:
            raise AssertionError(f"{label}: step {step_id!r}: {exc}") from None


@functools.cache
def _test_image() -> str:
    """The kubernetes tests' image (built once per session when its inputs changed)."""
    return build_image()


def project_image(project: Path) -> str:
    """A throwaway image: the test image plus `project` at /project, owned by the pods' user (a
    step may write into its working directory, as iris does); its tag."""
    flags = f"--chown={RUN_AS_USER}:{RUN_AS_USER} "
    return images.throwaway_image(
        "pipec-conformance-k8s", _test_image(), project, PROJECT_IN_IMAGE, flags
    )


class KubernetesHarness:
    """Plain Kubernetes Jobs: kubernetes-validate; runs against the stand-in API server."""

    id = target = "kubernetes"
    settings: tuple[str, ...] = (f"image={IMAGE}", f"volume={CLAIM}")
    needs_image = True

    def compile(self, ref: str, extra: Sequence[str] = ()) -> Bundle:
        return driver.compile_ref(ref, self.target, [*self.settings, *extra])

    def steps(self, bundle: Bundle) -> dict[str, StepView]:
        found = {}
        for step_id, job in step_jobs(bundle).items():
            (container,) = job["spec"]["template"]["spec"]["containers"]
            found[step_id] = container_view(container)
        return found

    def validate(self, bundles: Mapping[str, Bundle]) -> dict[str, Seen]:
        seen: dict[str, Seen] = {}
        with tempfile.TemporaryDirectory(prefix="pipec-k8s-") as scratch:
            files: list[Path] = []
            for number, (label, bundle) in enumerate(bundles.items()):
                folder = Path(scratch) / str(number)
                write_files(bundle, folder / "out")
                files += sorted((folder / "out").rglob("*.yaml"))
                _check_pods(label, bundle)
                plan = plan_of(bundle, folder / "mounted")
                seen[label] = Seen({p.name: p.default for p in plan.params if not p.required})
            failures = validate_files(tool_python("kubernetes"), files)
        if failures:
            version, words = next(iter(failures.items()))
            raise AssertionError(f"kubernetes-validate --strict -k {version}:\n{words}")
        return seen

    def step_env(self, base: Mapping[str, str]) -> dict[str, str]:
        # A pod starts with its image's environment plus what the target sets in every pod
        # (HOME and TMPDIR on the scratch volume); nothing of the host gets in.
        pod = kubelet.container_env((e["name"], e["value"]) for e in pods.plain_env({}))
        return {**images.image_env(_test_image()), **pod}

    def run(
        self,
        ref: str,
        params: Mapping[str, Any],
        workdir: Path,
        env: Mapping[str, str],
        secrets: Mapping[str, str],
        *,
        optimize: bool = True,
    ) -> Outputs:
        pipeline, _ = driver.load_checked(ref)
        tag = project_image(loader.project_root(Path(ref).parent))
        named = {IMAGE, *(s.image for s in graph.steps(pipeline) if s.image)}
        standin = contextlib.contextmanager(start_standin)(
            tool_python("kubernetes"), workdir / "standin", {name: tag for name in named}
        )
        try:
            with standin as started:  # stops the server and removes its containers after
                return _run_on(started, ref, params, env, secrets, optimize)
        finally:
            images.remove_image(tag)


def _run_on(
    standin: StandIn,
    ref: str,
    params: Mapping[str, Any],
    env: Mapping[str, str],
    secrets: Mapping[str, str],
    optimize: bool,
) -> Outputs:
    """One run with the scheduler here (`driver=local`) and its Jobs on `standin`; checks that
    the steps ran as pods of the stand-in and that every pod met PodSecurity `restricted`."""
    if secrets:
        status, answer = standin.post(
            f"/api/v1/namespaces/{NAMESPACE}/secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "pipec-secrets"},
                "stringData": dict(secrets),
            },
        )
        assert status == 201, answer
    # The claim is the stand-in's host folder, mounted at the same path in every pod and new
    # with this stand-in: the run's folder is the only one in it.
    artifacts = standin.pvc
    settings = [
        *KubernetesHarness.settings,
        "driver=local",
        f"volume_path={standin.pvc}",
        f"code_root={PROJECT_IN_IMAGE}",
        # Pipelines of the suite may write into their working directory (iris does), as they do
        # in the local reference run; tests/test_kubernetes_run.py covers the read-only root.
        "read_only_root=false",
        "poll_interval=0.5",
    ]
    # The scheduler reads secret values to mask them in the logs it keeps (steps get them from
    # the Secret): as the local target, from the environment of `pipec run`.
    run_env = {**env, **secrets, "KUBECONFIG": str(standin.kubeconfig)}
    options = run_options(optimize, "--no-cache")
    outputs = cli_run(ref, params, artifacts, run_env, settings, "kubernetes", options)
    (run_id,) = [p.name for p in artifacts.iterdir() if p.is_dir()]
    run_pods = standin.objects(f"/api/v1/namespaces/{NAMESPACE}/pods", f"pipec.dev/run={run_id}")
    if not run_pods:
        raise RunFailed(f"run {run_id} made no pod on the stand-in")
    for pod in run_pods:
        if found := violations(pod["spec"]):
            raise RunFailed(f"pod {pod['metadata']['name']} is not restricted: {found}")
    # Chains fuse by default (a step attempt is a pod): name a fused Job's outputs by the steps.
    return steps_as_written(outputs, ref, "kubernetes", settings, optimize)


ADAPTERS: list[Harness] = [KubernetesHarness()]
