"""The `kubernetes` target: plain Kubernetes Jobs, sequenced by pipec's own scheduler.

Kubernetes has no DAG, so a **driver** runs the scheduler every pipec-driven target shares
(`pipec.backends.runner`) with a Kubernetes-Job executor (`executor`): one Job per step attempt,
rendered by `pods.step_job` on top of the one pod renderer (`common.k8s`). The driver runs in the
cluster as a Job (`driver=cluster`, restarted by `backoffLimit` and resuming from what is in the
artifact store, `driver`/`journal`) or on this machine (`driver=local`, with the local metadata
store so `pipec runs`, `pipec logs` and `--resume` work as for `local`).

`emit` writes plain YAML for `kubectl apply -f DIR` (`manifests`); `pipec run` applies the same
objects with the kubernetes client and follows the driver (`submit`). The client is imported only
when running (extra `kubernetes`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pipec.backends.base import (
    Backend,
    Bundle,
    Capabilities,
    Limits,
    RunOptions,
    RunOutcome,
)
from pipec.backends.kubernetes.settings import KubernetesTargetSettings
from pipec.backends.runner import plan as plans
from pipec.backends.settings import SettingsError, TargetSettings, require_images
from pipec.ir.model import Pipeline


class KubernetesBackend(Backend[KubernetesTargetSettings]):
    """Plain Kubernetes: manifests for `kubectl apply`, run by pipec's scheduler in a driver."""

    name: ClassVar[str] = "kubernetes"
    description: ClassVar[str] = "plain Kubernetes Jobs driven by pipec's scheduler"
    extra: ClassVar[str | None] = "kubernetes"
    capabilities: ClassVar[Capabilities] = Capabilities.all()
    notes: ClassVar[dict[str, str]] = {
        "schedule": "a CronJob (concurrencyPolicy Forbid) in the compiled files; `pipec run` "
        "runs once",
        "retries": "one Job per attempt (the driver retries after the delay); evictions do not "
        "count",
    }
    how: ClassVar[dict[str, str]] = {
        "cache": "driver=cluster: by the step runtime, indexed in <artifact_root>/.pipec-cache/; "
        "driver=local: the local metadata store",
    }
    settings_model: ClassVar[type[TargetSettings]] = KubernetesTargetSettings
    # Every step attempt is a pod: scheduling, an image check, a container start and pipec's
    # import, seconds each on a cluster. Chains of small steps run as one pod unless `fuse=false`.
    fuse_by_default: ClassVar[bool] = True
    # Each object pipec creates (the plan ConfigMap, the driver Job or CronJob, every step's Job)
    # is stored whole in etcd, whose default request limit is 1.5 MiB. The ConfigMap's own 1 MiB
    # of data is enforced where it is written (`manifests.plan_configmap`, gzip above 900 KiB).
    # No loop limit: pipec's scheduler expands loops itself, one Job per iteration.
    limits: ClassVar[Limits] = Limits(spec_bytes=1536 * 1024)

    @property
    def image_extras(self) -> tuple[str, ...]:
        """The in-cluster driver runs from the step image and talks to the API server. Also with
        driver=local: one image serves both drivers, so switching `driver` needs no rebuild."""
        return ("kubernetes",)

    def plan(self, pipeline: Pipeline) -> plans.Plan:
        """The scheduler's plan, with the artifact root the pods see."""
        require_images(pipeline, self.settings.image, self.name)
        if self.settings.image is None:
            raise SettingsError(
                "target 'kubernetes' needs the `image` setting: the driver runs in it (set it in "
                "[tool.pipec.targets.kubernetes] or --set image=...)"
            )
        root = self.settings.resolved_artifact_root()
        settings = self.settings.model_copy(update={"artifact_root": root})
        # An in-cluster driver's metadata ends with its run: the runtime keeps the step cache
        # in the artifact store instead (`runtime.cache`).
        return plans.build(pipeline, settings, runtime_cache=self.settings.driver == "cluster")

    def emit(self, pipeline: Pipeline) -> Bundle:
        """`1-rbac.yaml`, `2-plan.yaml`, `3-driver.yaml` and `steps/<id>.yaml`."""
        from pipec.backends.kubernetes import manifests

        try:
            built = manifests.build(self.plan(pipeline), self.settings, schedule=pipeline.schedule)
        except manifests.ManifestError as exc:
            raise SettingsError(str(exc)) from None
        return built.bundle()

    def run(self, pipeline: Pipeline, params: dict[str, Any], options: RunOptions) -> RunOutcome:
        """`driver=cluster`: apply the manifests and (with `--wait`) follow the driver Job.
        `driver=local`: run the scheduler here with the Job executor."""
        if self.settings.driver == "local":
            from pipec.backends.kubernetes import driver

            result = driver.run_here(self, pipeline, params, options)
            return RunOutcome(result.exit_code, result)
        from pipec.backends.kubernetes import submit

        return RunOutcome(submit.submit_run(self, pipeline, params, options))

    def resume(self, run_id: str, options: RunOptions) -> RunOutcome:
        """Continue a `driver=local` run (an in-cluster driver resumes by itself)."""
        if self.settings.driver != "local":
            return super().resume(run_id, options)
        from pipec.backends.kubernetes import driver

        result = driver.resume_here(self, run_id, options)
        return RunOutcome(result.exit_code, result)
