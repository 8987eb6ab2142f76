"""How one step becomes one Airflow task in each operator mode: kubernetes, docker, local.

The DAG writer works out a step's runtime invocation and environment once (`StepCall`); a mode
turns them into an operator call: a KubernetesPodOperator, a DockerOperator, or a PythonOperator
that runs the step runtime as a subprocess of the worker. Modes differ only in how the command,
environment, resources, secrets and the XCom value are spelled.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipec.backends.airflow.local_helper import LOCAL_HELPER
from pipec.backends.airflow.pysource import INDENT, Argv, Call, Code, call, templated_text
from pipec.backends.airflow.settings import AirflowSettings
from pipec.backends.common import docker, k8s
from pipec.backends.runtime.invocation import Invocation, module_args
from pipec.ir.model import Resources

K8S_XCOM_FILE = "/airflow/xcom/return.json"  # read by KubernetesPodOperator's XCom sidecar
DOCKER_XCOM_FILE = "/tmp/pipec-xcom.json"  # read back by DockerOperator(retrieve_output=True)
DOCKER_TEMPLATE_EXT = (".sh", ".bash", ".env")
JSON_DOCKER_OPERATOR = "_JsonDockerOperator"
JSON_DOCKER_SOURCE = f'''class {JSON_DOCKER_OPERATOR}(DockerOperator):
    """A DockerOperator whose retrieved output file (the task's XCom) is the JSON text the step
    runtime writes; DockerOperator unpickles that file unless told otherwise."""

    pickling_library = json
'''
"""Defined by a docker-mode DAG file whose tasks hand Airflow an output (`retrieve_output`)."""


@dataclass(frozen=True)
class TaskOptions:
    """What every task carries whatever runs it."""

    task_id: str
    display_name: str | None
    retries: int
    retry_delay: float
    timeout: float | None
    trigger_rule: str | None
    parallelism: int | None


@dataclass(frozen=True)
class StepCall:
    """One step's runtime invocation and environment, however a mode runs it."""

    runtime: Invocation[Call]
    env: dict[str, Any]
    secrets: list[str]
    exports: tuple[str, ...]
    """The outputs Airflow reads through XCom: one is the task's `return_value`; several are one
    JSON object, which `multiple_outputs` pushes as one XCom per output name."""
    image: str | None
    resources: Resources


@dataclass(frozen=True)
class Created:
    """An operator call, with comment lines to print above it."""

    call: Call
    comments: tuple[str, ...] = ()

    def comments_at(self, indent: int) -> list[str]:
        """The comment lines at nesting level `indent`."""
        return [f"{INDENT * indent}# {line}" for line in self.comments]


@dataclass(frozen=True)
class Mode:
    """One operator mode: its template file extensions, file-level helper, and task factory."""

    template_ext: tuple[str, ...]
    helper: str | None
    task: Callable[[TaskOptions, StepCall, AirflowSettings, set[str]], Created] = field(
        repr=False
    )


def _seconds(value: float) -> Code:
    number = int(value) if float(value).is_integer() else value
    return Code(f"timedelta(seconds={number!r})")


def _common(options: TaskOptions) -> dict[str, Any]:
    """Task id, display name, retries, timeout, trigger rule and loop parallelism."""
    common: dict[str, Any] = {"task_id": options.task_id}
    common["task_display_name"] = options.display_name
    if options.retries:
        common["retries"] = options.retries
        common["retry_delay"] = _seconds(options.retry_delay)
    if options.timeout is not None:
        common["execution_timeout"] = _seconds(options.timeout)
    common["trigger_rule"] = options.trigger_rule
    # A loop's parallelism caps the running instances of each of its tasks.
    common["max_active_tis_per_dagrun"] = options.parallelism
    return common


def kubernetes_task(
    options: TaskOptions, inv: StepCall, settings: AirflowSettings, imports: set[str]
) -> Created:
    """A KubernetesPodOperator running the step runtime in the step's image, its pod as
    `common.k8s` renders it for every Kubernetes target."""
    imports.add("from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator")
    runtime = _exporting(inv, K8S_XCOM_FILE)
    argv = [*module_args(), *runtime.argv()]
    kwargs = _common(options)
    # The pod name is left to the operator: it derives a DNS-safe, unique one from the task id.
    kwargs["namespace"] = templated_text(settings.namespace) if settings.namespace else None
    kwargs["image"] = templated_text(inv.image or "")
    kwargs["cmds"] = [templated_text(settings.python)]
    kwargs["arguments"] = Argv(tuple(argv))
    kwargs["env_vars"] = inv.env or None
    pod = k8s.pod_needs(inv.resources, inv.secrets, options.timeout, settings)
    kwargs.update(_pod_kwargs(pod, imports))
    if inv.exports:  # off by default for this operator
        kwargs["do_xcom_push"] = True
        kwargs["multiple_outputs"] = len(inv.exports) > 1 or None
    return Created(call("KubernetesPodOperator", **kwargs))


def _pod_kwargs(pod: k8s.PodNeeds, imports: set[str]) -> dict[str, Any]:
    """The operator's arguments for a pod's needs. `container_resources` and `node_selector` are
    template fields (their text is wrapped where Jinja would touch it); `secrets` and
    `tolerations` are not, so they take the text as it is."""
    found: dict[str, Any] = {}
    if pod.secret_env:
        imports.add("from airflow.providers.cncf.kubernetes.secret import Secret")
        found["secrets"] = [
            call(
                "Secret",
                "env",
                env["name"],
                env["valueFrom"]["secretKeyRef"]["name"],
                env["valueFrom"]["secretKeyRef"]["key"],
            )
            for env in pod.secret_env
        ]
    if pod.resources:
        imports.add("from kubernetes.client import models as k8s")
        found["container_resources"] = call(
            "k8s.V1ResourceRequirements",
            **{kind: _templated(amounts) for kind, amounts in pod.resources.items()},
        )
    if pod.node_selector:
        found["node_selector"] = _templated(pod.node_selector)
    if pod.tolerations:
        imports.add("from kubernetes.client import models as k8s")
        found["tolerations"] = [
            call("k8s.V1Toleration", **{_snake(k): v for k, v in t.items()})
            for t in pod.tolerations
        ]
    # Besides Airflow's execution_timeout: the cluster ends the pod even without its worker.
    found["active_deadline_seconds"] = pod.active_deadline_seconds
    return found


def _templated(mapping: Mapping[str, str]) -> dict[str, str | Call]:
    # Airflow renders a template field's dict values, never its keys.
    return {k: templated_text(v) for k, v in mapping.items()}


def _snake(name: str) -> str:
    """A Kubernetes API field name as the Python client's argument (`tolerationSeconds` ->
    `toleration_seconds`)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def docker_task(
    options: TaskOptions, inv: StepCall, settings: AirflowSettings, imports: set[str]
) -> Created:
    """A DockerOperator running the step runtime in the step's image."""
    imports.add("from airflow.providers.docker.operators.docker import DockerOperator")
    ext = DOCKER_TEMPLATE_EXT
    runtime = _exporting(inv, DOCKER_XCOM_FILE)
    command = runtime.command(templated_text(settings.python, ext))
    env = dict(inv.env)
    for name in inv.secrets:
        # Rendered from an Airflow Variable (any secrets backend) when the task starts.
        env[name] = f"{{{{ var.value.{name} }}}}"
    kwargs = _common(options)
    kwargs["image"] = templated_text(inv.image or "", ext)
    kwargs["command"] = Argv(tuple(command))
    kwargs["environment"] = env or None
    kwargs["docker_url"] = templated_text(settings.docker_url, ext) if settings.docker_url else None
    needs = docker.container_needs(inv.resources, settings.artifact_root)
    if needs.bind_mounts:
        imports.add("from docker.types import Mount")
        # The artifact root is a host folder: mount it where the step expects it.
        kwargs["mounts"] = [
            call("Mount", target=path, source=path, type="bind") for path in needs.bind_mounts
        ]
    # The operator turns `cpus` into the container's CPU shares, as `common.docker` decides.
    kwargs["cpus"] = needs.cpus
    kwargs["mem_limit"] = needs.memory_bytes
    if needs.gpus:
        imports.add("from docker.types import DeviceRequest")
        kwargs["device_requests"] = [
            call("DeviceRequest", count=d["Count"], capabilities=d["Capabilities"])
            for d in needs.device_requests()
        ]
    kwargs["mount_tmp_dir"] = False
    kwargs["auto_remove"] = "success"
    if inv.exports:
        kwargs["retrieve_output"] = True
        kwargs["retrieve_output_path"] = DOCKER_XCOM_FILE
        kwargs["multiple_outputs"] = len(inv.exports) > 1 or None
    else:
        kwargs["do_xcom_push"] = False
    created = call(JSON_DOCKER_OPERATOR if inv.exports else "DockerOperator", **kwargs)
    return Created(created)


def local_task(
    options: TaskOptions, inv: StepCall, settings: AirflowSettings, imports: set[str]
) -> Created:
    """A PythonOperator running the step runtime as a subprocess of the worker."""
    imports.add("from airflow.providers.standard.operators.python import PythonOperator")
    op_kwargs: dict[str, Any] = {
        "python": templated_text(settings.python),
        "argv": Argv(tuple(inv.runtime.argv())),
        "env": inv.env,
    }
    if inv.secrets:
        op_kwargs["secrets"] = inv.secrets
    if inv.exports:
        op_kwargs["export"] = inv.exports[0] if len(inv.exports) == 1 else list(inv.exports)
    kwargs = _common(options)
    kwargs["python_callable"] = Code("_run_step")
    kwargs["op_kwargs"] = op_kwargs
    kwargs["do_xcom_push"] = bool(inv.exports)
    kwargs["multiple_outputs"] = len(inv.exports) > 1 or None
    return Created(call("PythonOperator", **kwargs), _resource_note(inv.resources))


def _exporting(inv: StepCall, file: str) -> Invocation[Call]:
    """The invocation writing every exported output to the XCom `file` (several: one object)."""
    runtime = inv.runtime
    for name in inv.exports:
        runtime = runtime.with_output_value(name, file)
    return runtime


def _resource_note(r: Resources) -> tuple[str, ...]:
    """Local tasks share the worker: requests are shown to the reader, not enforced."""
    asked: Mapping[str, Any] = {
        "cpu": r.cpu,
        "memory": r.memory,
        "disk": r.disk,
        "gpu": r.gpu,
        "gpu_type": r.gpu_type,
    }
    shown = ", ".join(f"{k}={v!r}" for k, v in asked.items() if v is not None)
    if not shown:
        return ()
    return (f"requests {shown}: not enforced in local mode (the step shares the worker)",)


MODES: dict[str, Mode] = {
    "kubernetes": Mode(template_ext=(), helper=None, task=kubernetes_task),
    "docker": Mode(template_ext=DOCKER_TEMPLATE_EXT, helper=None, task=docker_task),
    "local": Mode(template_ext=(), helper=LOCAL_HELPER, task=local_task),
}
