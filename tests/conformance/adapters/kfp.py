"""The KFP family's adapters: `kubeflow` and `vertex` (both emit a KFP PipelineSpec).

Checked with the engines' own types in the kfp tool environment (tests/kfp_check.py): the strict
PipelineSpec / platform-spec proto parse, kfp's component loader, and for vertex the request body
as `google.cloud.aiplatform_v1.PipelineJob` (and `Schedule`). Steps run in Kubernetes pods, so
their env is what the kubelet makes of it. Kubeflow runs here under kfp.local's DockerRunner in a
throwaway image holding the project; Vertex has no engine here.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipec import driver, loader
from pipec.backends.base import Bundle
from pipec.backends.files import write_files
from pipec.backends.kubeflow.components import ENTRIES_MODULE, METRICS_OUTPUT
from pipec.backends.kubeflow.dag import ENTRIES
from pipec.backends.runtime.invocation import RUNTIME_MODULE
from pipec.ir import graph
from tests.conformance import images, kubelet
from tests.conformance.adapters.local import steps_as_written
from tests.conformance.harness import Harness, NoEngineHere, Outputs, RunFailed, Seen, StepView
from tests.conformance.outputs import value_hash
from tests.conftest import REPO, tool_python

CHECKER = REPO / "tests" / "kfp_check.py"
IMAGE = "ghcr.io/acme/pipec-conformance:0.1"  # compiles only: never pulled
PROJECT_IN_IMAGE = "/project"
_ITERATION = re.compile(r"-iteration-(\d+)$")
EXECUTOR_OUTPUT = "executor_output.json"  # kfp.local's name for a task's executor output file


def spec_of(bundle: Bundle) -> dict[str, Any]:
    """The PipelineSpec (the first document of pipeline.yaml)."""
    spec: dict[str, Any] = next(yaml.safe_load_all(bundle["pipeline.yaml"]))
    return spec


def _step_tasks(spec: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(task key, task, component) of every task that runs a step, in every DAG (not the
    tasks that write a loop's entries, `ENTRIES_MODULE`)."""
    components = spec.get("components", {})
    executors = spec["deploymentSpec"]["executors"]
    dags = [spec["root"]["dag"], *(c["dag"] for c in components.values() if "dag" in c)]
    for dag in dags:
        for key, task in dag.get("tasks", {}).items():
            component = components[task["componentRef"]["name"]]
            if "executorLabel" not in component:
                continue
            command = executors[component["executorLabel"]]["container"].get("command", [])
            if ENTRIES_MODULE not in command:
                yield key, task, component


def step_id(task_key: str) -> str:
    """The pipec step id of a task: pipec keys a step's task by its id as a DNS label (ids are
    lowercase identifiers, so only `_` changes); the display name is in taskInfo."""
    return task_key.replace("-", "_")


def kfp_steps(spec: Mapping[str, Any]) -> dict[str, StepView]:
    """Step id -> its container as the pod starts it."""
    executors = spec["deploymentSpec"]["executors"]
    found: dict[str, StepView] = {}
    for key, _, component in _step_tasks(spec):
        container = executors[component["executorLabel"]]["container"]
        line = [*container.get("command", []), *container.get("args", [])]
        argv = line[line.index(RUNTIME_MODULE) + 1 :] if RUNTIME_MODULE in line else line
        env = kubelet.container_env((e["name"], e["value"]) for e in container.get("env", []))
        found[step_id(key)] = StepView(argv, env)
    return found


def _check(manifest: Mapping[str, Mapping[str, str | None]]) -> dict[str, Any]:
    """tests/kfp_check.py `seen` in the kfp tool environment."""
    done = subprocess.run(
        [str(tool_python("kfp")), str(CHECKER), "seen", json.dumps(manifest)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"kfp rejected the files:\n{done.stdout[-4000:]}{done.stderr[-2000:]}")
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def _written(bundles: Mapping[str, Bundle], folder: Path) -> dict[str, Path]:
    paths = {}
    for number, (label, bundle) in enumerate(bundles.items()):
        paths[label] = folder / str(number)
        write_files(bundle, paths[label])
    return paths


class _KfpFamily:
    id: str
    target: str
    settings: tuple[str, ...]
    needs_image = True

    def compile(self, ref: str, extra: Sequence[str] = ()) -> Bundle:
        return driver.compile_ref(ref, self.target, [*self.settings, *extra])

    def steps(self, bundle: Bundle) -> dict[str, StepView]:
        return kfp_steps(spec_of(bundle))


class KubeflowHarness(_KfpFamily):
    """Kubeflow Pipelines: KFP's own checks; runs under kfp.local with Docker."""

    id = target = "kubeflow"
    settings: tuple[str, ...] = (f"image={IMAGE}",)

    def validate(self, bundles: Mapping[str, Bundle]) -> dict[str, Seen]:
        with tempfile.TemporaryDirectory(prefix="pipec-kfp-") as scratch:
            paths = _written(bundles, Path(scratch))
            answer = _check({k: {"spec": str(p / "pipeline.yaml")} for k, p in paths.items()})
        return {label: Seen(answer[label]["params"]) for label in bundles}

    def step_env(self, base: Mapping[str, str]) -> dict[str, str]:
        # A container starts with its image's environment; nothing of the host gets in.
        return images.image_env(images.base_image())

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
        if any(step.secrets for step in graph.steps(driver.load_checked(ref)[0])):
            raise NoEngineHere("kfp.local has no Kubernetes secrets to hand a step")
        done = kfp_local_run(ref, params, workdir, env, optimize=optimize)
        return steps_as_written(
            kfp_local_outputs(done.folder, done.spec), ref, self.target, self.settings, optimize
        )


@dataclass(frozen=True)
class KfpLocalRun:
    """A finished kfp.local run: its folder under the pipeline root, the PipelineSpec it ran, and
    the output parameters kfp.local recorded per task (DAG tasks included)."""

    folder: Path
    spec: dict[str, Any]
    recorded: dict[str, Any]


def kfp_local_run(
    ref: str,
    params: Mapping[str, Any],
    workdir: Path,
    env: Mapping[str, str],
    *,
    optimize: bool = True,
) -> KfpLocalRun:
    """Compile REF for kubeflow into `workdir` and run it under kfp.local's DockerRunner (tests/
    kfp_check.py `run`) in a throwaway image holding REF's project. RunFailed when it fails."""
    project = loader.project_root(Path(ref).parent)
    tag = images.project_image(project, PROJECT_IN_IMAGE)
    try:
        settings = [*KubeflowHarness.settings, f"image={tag}", f"code_root={PROJECT_IN_IMAGE}"]
        bundle = driver.prepare(ref, "kubeflow", settings, optimize=optimize).emit()
        write_files(bundle, workdir)
        root = workdir / "kfp-root"
        root.mkdir()
        arguments = [str(workdir / "pipeline.yaml"), json.dumps(dict(params)), str(root), tag]
        done = subprocess.run(
            [str(tool_python("kfp")), str(CHECKER), "run", *arguments],
            cwd=workdir,
            env=dict(env),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RunFailed(f"kfp.local failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    finally:
        images.remove_image(tag)
    (folder,) = root.iterdir()
    return KfpLocalRun(folder, spec_of(bundle), json.loads(done.stdout.strip().splitlines()[-1]))


class VertexHarness(_KfpFamily):
    """Vertex AI Pipelines: KFP's checks plus the request body as the Vertex API's own type."""

    id = target = "vertex"
    settings: tuple[str, ...] = (
        f"image={IMAGE}",
        "project=acme-ml",
        "region=us-central1",
        "pipeline_root=gs://acme-ml-pipelines/conformance",
    )

    def validate(self, bundles: Mapping[str, Bundle]) -> dict[str, Seen]:
        with tempfile.TemporaryDirectory(prefix="pipec-vertex-") as scratch:
            paths = _written(bundles, Path(scratch))
            manifest = {
                label: {
                    "spec": str(path / "pipeline.yaml"),
                    "job": str(path / "pipeline_job.json"),
                    "schedule": str(path / "schedule.json")
                    if "schedule.json" in bundles[label]
                    else None,
                }
                for label, path in paths.items()
            }
            answer = _check(manifest)
        seen: dict[str, Seen] = {}
        for label in bundles:
            # What Vertex runs with is the request's parameter values; the spec must agree.
            job, spec = answer[label]["job_params"], answer[label]["params"]
            assert {k: spec[k] for k in job} == job, f"{label}: job and spec disagree"
            seen[label] = Seen(job)
        return seen

    def step_env(self, base: Mapping[str, str]) -> dict[str, str]:
        raise NoEngineHere("Vertex AI runs only in Google Cloud")

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
        raise NoEngineHere("Vertex AI runs only in Google Cloud")


# How kfp.local reads an output parameter file back (kfp/local/executor_output_utils.py): a
# STRING is the text itself, anything else is JSON (numbers exactly as the step wrote them).
_DECODE: dict[str, Callable[[str], Any]] = {"STRING": lambda text: text}


def kfp_local_outputs(run_dir: Path, spec: Mapping[str, Any]) -> Outputs:
    """Every output kfp.local kept under a run's folder, keyed like pipec's store: an artifact by
    its meta.json, a parameter value by the hash the store would give it.

    kfp.local keeps a task's outputs in `[loop-N-iteration-i/...]<component>/<output>`: by
    component (without `comp-`), not by task, so steps sharing a component cannot be told apart.
    Beside them is KFP's executor output file, which the runtime writes for artifact outputs.
    """
    steps: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for key, task, component in _step_tasks(spec):
        name = task["componentRef"]["name"].removeprefix("comp-")
        steps.setdefault(name, []).append((step_id(key), component))
    found: Outputs = {}
    artifacts = {meta.parent for meta in run_dir.rglob("meta.json")}
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        if path.name == EXECUTOR_OUTPUT or path.name == METRICS_OUTPUT:
            continue  # KFP's own files: what the step wrote is compared, not how KFP lists it
        parts = path.relative_to(run_dir).parts
        if any(parent in artifacts for parent in path.parents):
            if path.name == "meta.json":
                key = _key(parts[:-1], steps)
                found[key] = json.loads(path.read_text(encoding="utf-8"))["hash"]
            continue
        if parts[-2] not in steps and parts[-1] == ENTRIES:
            continue  # a loop's entries (runtime/loop_entries.py): pipec's, not a step's
        (_, component), *_ = steps[parts[-2]]
        kind = component["outputDefinitions"]["parameters"][parts[-1]]["parameterType"]
        text = path.read_bytes().decode("utf-8")  # as written: no newline translation
        found[_key(parts, steps)] = value_hash(_DECODE.get(kind, json.loads)(text))
    return found


def _key(parts: Sequence[str], steps: Mapping[str, list[tuple[str, Any]]]) -> str:
    """`[loop-1-iteration-0, ..., component, output]` -> `step/0/.../output`."""
    *scopes, component, output = parts
    users = sorted({step for step, _ in steps[component]})
    if len(users) > 1:
        raise RunFailed(f"kfp.local wrote one folder for steps {', '.join(users)}: cannot compare")
    indices = [m.group(1) for s in scopes if (m := _ITERATION.search(s))]
    return "/".join([users[0], *indices, output])


ADAPTERS: list[Harness] = [KubeflowHarness(), VertexHarness()]
