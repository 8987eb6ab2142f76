"""`pipec run --target kubernetes` (driver=cluster): apply the manifests with the kubernetes
client, then (with `--wait`) follow the driver Job to its end.

The objects are those `pipec compile` writes (`manifests.build`), with the driver Job named after
a new run id, which it also gets in its environment with the given parameters. The
ServiceAccount, Role and RoleBinding are created or replaced (apply), the plan's ConfigMap is
created unless it exists (it is named by its content and immutable), the Job is created. Exit
codes and output are every submitter's (`common.submit`): stdout is the run id alone; Ctrl-C while
following leaves the run going and says how to follow or delete it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipec.backends.base import NoSubmitter
from pipec.backends.common import k8s
from pipec.backends.common.http import JSON
from pipec.backends.common.submit import (
    Deadline,
    ExitCode,
    Submission,
    SubmitError,
    follow,
    submitting,
)
from pipec.backends.kubernetes import client, manifests, names
from pipec.backends.params import resolve_params
from pipec.backends.runner import runs

if TYPE_CHECKING:
    from pipec.backends.base import RunOptions
    from pipec.backends.kubernetes import KubernetesBackend
    from pipec.ir.model import Pipeline

FINISHED = {"Complete": ExitCode.OK, "Failed": ExitCode.RUN_FAILED}


def submit_run(
    backend: KubernetesBackend, pipeline: Pipeline, params: dict[str, Any], options: RunOptions
) -> int:
    """Apply the manifests of one run; with `options.wait` follow the driver to its end."""
    refused = [
        f for f, given in (("--no-cache", options.no_cache), ("--json", options.json)) if given
    ]
    if refused:
        raise NoSubmitter(
            f"{', '.join(refused)}: only when pipec drives the steps from here (--set "
            "driver=local); the in-cluster driver keeps no run records on this machine"
        )
    plan = backend.plan(pipeline)
    settings = backend.settings
    run_id = runs.new_run_id()
    values = resolve_params(plan.declared_params, params)
    if options.parallelism is not None:
        settings = settings.model_copy(update={"parallelism": options.parallelism})
    built = manifests.build(
        plan, settings, schedule=None, run_id=run_id, params_json=k8s.json_env_text(values)
    )
    api = client.api_client(context=settings.context)

    def work(submission: Submission) -> ExitCode:
        apply(api, built.applied(), submission)
        job = built.driver["metadata"]["name"]
        namespace = settings.namespace
        submission.created(
            "run", run_id, note=f"job {namespace}/{job}; kubectl logs -f job/{job} -n {namespace}"
        )
        if not options.wait:
            return ExitCode.OK
        batch = client.require().client.BatchV1Api(api)

        def poll() -> JSON:
            found = client.read(batch.read_namespaced_job(job, namespace, _preload_content=False))
            status = found.get("status") or {}
            state = client.finished(found) or ("Running" if status.get("active") else "Pending")
            return {"state": state, "job": found}

        try:
            code, _ = follow(
                poll,
                FINISHED,
                label=f"run {run_id}",
                poll_interval=settings.poll_interval,
                deadline=Deadline(settings.run_timeout),
                say=submission.say,
            )
        except KeyboardInterrupt:
            submission.say(
                f"stopped following; run {run_id} goes on. Follow it with `kubectl logs -f "
                f"job/{job} -n {namespace}`, stop it and its steps with `kubectl delete jobs "
                f"-l {names.RUN_LABEL}={run_id} -n {namespace}`"
            )
            return ExitCode.RUN_FAILED
        return code

    return submitting("kubernetes", lambda s: _guarded(work, s))


def _guarded(work: Any, submission: Submission) -> ExitCode:
    """API errors as SubmitError lines (the kubernetes client raises its own exceptions)."""
    try:
        result: ExitCode = work(submission)
        return result
    except SubmitError:
        raise
    except Exception as exc:
        if type(exc).__name__ in {"ApiException", "MaxRetryError", "NewConnectionError"} or (
            client.status_of(exc) is not None
        ):
            raise SubmitError(client.api_message(exc)) from None
        if "urllib3" in type(exc).__module__:
            raise SubmitError(f"cannot reach the Kubernetes API: {exc}") from None
        raise


def apply(api: Any, objects: list[JSON], submission: Submission) -> None:
    """Create each object; one that exists is replaced (RBAC) or kept (the immutable plan)."""
    kubernetes = client.require()
    core = kubernetes.client.CoreV1Api(api)
    rbac = kubernetes.client.RbacAuthorizationV1Api(api)
    batch = kubernetes.client.BatchV1Api(api)
    calls = {
        "ServiceAccount": (
            core.create_namespaced_service_account,
            core.replace_namespaced_service_account,
        ),
        "Role": (rbac.create_namespaced_role, rbac.replace_namespaced_role),
        "RoleBinding": (rbac.create_namespaced_role_binding, rbac.replace_namespaced_role_binding),
        "ConfigMap": (core.create_namespaced_config_map, None),
        "Job": (batch.create_namespaced_job, None),
    }
    for obj in objects:
        create, replace = calls[obj["kind"]]
        meta = obj["metadata"]
        try:
            create(meta["namespace"], obj, _preload_content=False)
        except Exception as exc:
            if client.status_of(exc) != 409 or obj["kind"] == "Job":
                what = f"{obj['kind']} {meta['namespace']}/{meta['name']}"
                raise SubmitError(f"creating {what}: {client.api_message(exc)}") from None
            if replace is not None:
                replace(meta["name"], meta["namespace"], obj, _preload_content=False)
