"""Checks run inside the kfp tool environment (.venvs/kfp), never in the base install.

    python tests/kfp_check.py spec FILE...          strict PipelineSpec / platform spec parse,
                                                    then kfp.components.load_component_from_file
    python tests/kfp_check.py vertex-job FILE       aiplatform_v1.PipelineJob parse (strict)
    python tests/kfp_check.py vertex-schedule FILE  aiplatform_v1.Schedule parse (strict)
    python tests/kfp_check.py sdk-pods              the container resources and kfp-kubernetes
                                                    config the KFP SDK writes for the training
                                                    example's GPU, secret and timeout steps
    python tests/kfp_check.py sdk-scratch [CLASS]   the env and kfp-kubernetes config the KFP SDK
                                                    writes for a 10Gi scratch volume at /scratch
                                                    (from StorageClass CLASS, else the default)
    python tests/kfp_check.py run FILE ARGS_JSON ROOT IMAGE
                                                    run under kfp.local's DockerRunner; prints
                                                    the output parameters of every task as JSON
    python tests/kfp_check.py seen MANIFEST_JSON    for {label: {"spec": F, "job": F|null,
                                                    "schedule": F|null}}: every check above, then
                                                    the parameter defaults kfp's loader (and the
                                                    Vertex API type) read, as JSON on the last line

Each command prints `ok ...` (or the JSON result) and exits 0, or prints the error and exits 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def check_spec(path: str) -> None:
    from google.protobuf import json_format
    from kfp import components
    from kfp.pipeline_spec import pipeline_spec_pb2

    documents = list(yaml.safe_load_all(Path(path).read_text(encoding="utf-8")))
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(documents[0], spec, ignore_unknown_fields=False)
    if len(documents) > 1:
        platform = pipeline_spec_pb2.PlatformSpec()
        json_format.ParseDict(documents[1], platform, ignore_unknown_fields=False)
        from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s

        for name, config in documents[1]["platforms"]["kubernetes"]["deploymentSpec"][
            "executors"
        ].items():
            assert name in documents[0]["deploymentSpec"]["executors"], name
            json_format.ParseDict(
                config, k8s.KubernetesExecutorConfig(), ignore_unknown_fields=False
            )
    components.load_component_from_file(path)
    print(f"ok {path}")


def check_vertex(kind: str, path: str) -> None:
    from google.cloud import aiplatform_v1

    text = Path(path).read_text(encoding="utf-8")
    message_type = aiplatform_v1.PipelineJob if kind == "vertex-job" else aiplatform_v1.Schedule
    message_type.from_json(text, ignore_unknown_fields=False)
    print(f"ok {path}")


def _list_images_that_still_exist() -> None:
    """kfp.local looks for a step's image by listing every image, and the docker SDK inspects
    each listed image in turn: an image another test removes between the two (tests run in
    parallel and remove their throwaway images) failed the run with ImageNotFound. List only
    the images that still exist when inspected; the daemon is not otherwise touched."""
    from docker import errors
    from docker.models import images

    def listed(self: Any, name: Any = None, all: bool = False, filters: Any = None) -> list[Any]:
        found = []
        for entry in self.client.api.images(name=name, all=all, filters=filters):
            try:
                found.append(self.get(entry["Id"]))
            except errors.ImageNotFound:
                continue
        return found

    images.ImageCollection.list = listed  # type: ignore[method-assign]


def run(path: str, arguments: str, root: str, image: str) -> None:
    """Run a compiled pipeline under kfp.local with Docker (no network inside containers)."""
    import logging

    from kfp import components, local

    logging.basicConfig(level=logging.WARNING)
    _list_images_that_still_exist()
    local.init(
        runner=local.DockerRunner(network_mode="none"),
        pipeline_root=root,
        raise_on_error=True,
    )
    del image  # the spec names its image; the caller built it under that name
    recorded: dict[str, Any] = {}
    from kfp.local import io

    original = io.IOStore.put_task_output

    def record(self: Any, task_name: str, key: str, value: Any) -> None:
        recorded.setdefault(task_name, {})[key] = value
        original(self, task_name, key, value)

    io.IOStore.put_task_output = record  # type: ignore[method-assign]
    pipeline = components.load_component_from_file(path)
    pipeline(**json.loads(arguments))
    # Output parameters as they are; of the artifacts, only what KFP's UI shows of a Metrics
    # artifact (its metadata, as kfp.local read it from the executor output file).
    values = {
        task: {
            k: {"metrics": dict(v.metadata)} if _is_metrics(v) else v
            for k, v in outputs.items()
            if not hasattr(v, "uri") or _is_metrics(v)
        }
        for task, outputs in recorded.items()
    }
    print(json.dumps(values, sort_keys=True, default=str))


def _is_metrics(value: Any) -> bool:
    return getattr(value, "schema_title", None) == "system.Metrics"


def seen(manifest: str) -> None:
    """Check every file of every entry; print what the engines' types read from them."""
    from google.cloud import aiplatform_v1
    from kfp import components

    found: dict[str, Any] = {}
    for label, files in json.loads(manifest).items():
        check_spec(files["spec"])
        loaded = components.load_component_from_file(files["spec"])
        entry: dict[str, Any] = {
            "params": {
                name: spec.default for name, spec in (loaded.component_spec.inputs or {}).items()
            }
        }
        if files.get("job"):
            check_vertex("vertex-job", files["job"])
            job = aiplatform_v1.PipelineJob.from_json(Path(files["job"]).read_text("utf-8"))
            values = aiplatform_v1.PipelineJob.to_dict(job)["runtime_config"]["parameter_values"]
            entry["job_params"] = values
        if files.get("schedule"):
            check_vertex("vertex-schedule", files["schedule"])
        found[label] = entry
    print(json.dumps(found, sort_keys=True))


def sdk_pods() -> None:
    """The pod settings of examples/training.py's `train`, `deploy` and `split` steps, written
    with the KFP SDK and kfp-kubernetes the way a KFP user would, under pipec's policy (CPU as a
    request, memory requested and limited alike, a GPU limit with node selector and toleration,
    the secret from `pipec-secrets`, the timeout as the pod deadline)."""
    import tempfile

    from kfp import compiler, dsl, kubernetes

    @dsl.container_component
    def train():  # no annotations: KFP reads them, and this module postpones them to strings
        return dsl.ContainerSpec(image="img", command=["true"])

    @dsl.container_component
    def deploy():
        return dsl.ContainerSpec(image="img", command=["true"])

    @dsl.container_component
    def split():
        return dsl.ContainerSpec(image="img", command=["true"])

    @dsl.pipeline(name="pods")
    def pods():
        gpu = train()
        gpu.set_cpu_request("4").set_memory_request("16Gi").set_memory_limit("16Gi")
        gpu.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
        kubernetes.add_node_selector(gpu, "cloud.google.com/gke-accelerator", "nvidia-l4")
        kubernetes.add_toleration(gpu, key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
        token = {"REGISTRY_TOKEN": "REGISTRY_TOKEN"}
        kubernetes.use_secret_as_env(deploy(), "pipec-secrets", token)
        kubernetes.set_timeout(split(), 600)

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "pods.yaml"
        compiler.Compiler().compile(pods, str(path))
        spec, platform = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    found = {
        name: {
            "resources": executor["container"].get("resources"),
            "platform": executors.get(name),
        }
        for name, executor in spec["deploymentSpec"]["executors"].items()
    }
    print(json.dumps(found, sort_keys=True))


def sdk_scratch(storage_class: str | None) -> None:
    """A step with a 10Gi scratch volume, written with the KFP SDK and kfp-kubernetes the way a
    KFP user would: a generic ephemeral volume mounted at /scratch, and the variable that says
    where. Prints the executor's container env and platform config as JSON."""
    import tempfile

    from kfp import compiler, dsl, kubernetes

    @dsl.container_component
    def big():
        return dsl.ContainerSpec(image="img", command=["true"])

    @dsl.pipeline(name="scratch")
    def scratch():
        task = big()
        task.set_env_variable("PIPEC_SCRATCH", "/scratch")
        kubernetes.add_ephemeral_volume(
            task,
            volume_name="pipec-scratch",
            mount_path="/scratch",
            access_modes=["ReadWriteOnce"],
            size="10Gi",
            storage_class_name=storage_class,
        )

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scratch.yaml"
        compiler.Compiler().compile(scratch, str(path))
        spec, platform = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    (executor,) = spec["deploymentSpec"]["executors"].values()
    (config,) = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values()
    print(json.dumps({"env": executor["container"]["env"], "platform": config}, sort_keys=True))


def main(argv: list[str]) -> int:
    command, *rest = argv
    try:
        if command == "spec":
            for path in rest:
                check_spec(path)
        elif command in ("vertex-job", "vertex-schedule"):
            check_vertex(command, rest[0])
        elif command == "sdk-pods":
            sdk_pods()
        elif command == "sdk-scratch":
            sdk_scratch(rest[0] if rest else None)
        elif command == "run":
            run(*rest)
        elif command == "seen":
            seen(rest[0])
        else:
            print(f"unknown command {command!r}")
            return 2
    except Exception as exc:
        print(f"FAILED: {type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
