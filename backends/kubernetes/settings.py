"""`[tool.pipec.targets.kubernetes]`: the settings of the kubernetes target, checked where read.

Names the cluster will check again (namespace, service accounts, the claim, the Secret) are
checked here first, so a typo is one `error:` line at compile time instead of a rejected apply.
"""

from __future__ import annotations

import posixpath
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipec.backends.settings import KubernetesSettings, SettingsError
from pipec.ir import quantity

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _dns(value: str, label: bool) -> str:
    limit, pattern, what = (63, DNS_LABEL, "label") if label else (253, DNS_SUBDOMAIN, "subdomain")
    if len(value) > limit or not pattern.match(value):
        raise ValueError(
            f"{value!r} is not a Kubernetes name (an RFC 1123 DNS {what}: lowercase letters, "
            f"digits and '-', at most {limit} characters)"
        )
    return value


class KubernetesTargetSettings(KubernetesSettings):
    """`[tool.pipec.targets.kubernetes]` settings (also `--set key=value`); each setting's
    docstring is what `pipec targets kubernetes` shows (docs/targets/kubernetes.md has a table).
    Either `artifact_root` (an fsspec URL) or `volume` must be set."""

    artifact_root: str | None = None
    """Where step outputs live: an fsspec URL every pod can reach (`s3://...`, `gs://...`;
    credentials from the pods' environment or account), or a path under `volume_path` (unset:
    `volume_path`)."""
    code_root: str = "/app"
    """Where the project's code is in the image (the step modules import from there)."""
    namespace: str = "default"
    """The namespace every object goes to."""
    service_account: str = "pipec-driver"
    """The driver's account, created and bound to the least-privilege Role the manifests
    hold."""
    step_service_account: str | None = None
    """The account step pods run as (unset: the namespace's `default`), e.g. for workload
    identity to an object store; no step pod mounts an API token."""
    volume: str | None = None
    """A PersistentVolumeClaim mounted in every pod at `volume_path` (ReadWriteMany when steps
    run on several nodes); the default artifact root when `artifact_root` is unset."""
    volume_path: str = "/pipec"
    """Where `volume` is mounted in every pod."""
    driver: Literal["cluster", "local"] = "cluster"
    """`cluster`: pipec's scheduler runs in a Job (restarted up to `driver_restarts` times; a
    restart resumes from the artifact store); `local`: it runs on this machine with the local
    metadata store (`pipec runs`, `pipec logs`, `--resume` work as for local)."""
    parallelism: int = Field(default=16, ge=1)
    """Step Jobs at once (the cluster decides where and when each fits)."""
    run_as_user: int = Field(default=65532, ge=1)
    """The uid, gid and fsGroup of every pod (the restricted Pod Security Standard refuses
    root)."""
    read_only_root: bool = True
    """Containers get a read-only root file system (scratch space is `/tmp`); turn it off for
    steps that write into their working directory."""
    ttl_seconds: int = Field(default=86400, ge=0)
    """Finished Jobs are deleted after this many seconds (`kubectl logs` works until then)."""
    driver_restarts: int = Field(default=3, ge=0)
    """The driver Job's `backoffLimit` (an evicted or preempted driver pod does not count)."""
    driver_cpu: float = Field(default=0.25, gt=0)
    """The driver pod's CPU request."""
    driver_memory: str = "512Mi"
    """The driver pod's memory request and limit."""
    poll_interval: float = Field(default=5.0, gt=0)
    """Seconds between two looks at the driver Job while `pipec run --wait` follows it."""
    run_timeout: float = Field(default=86400.0, gt=0)
    """Seconds `pipec run --wait` follows the driver Job before it gives up (exit 1)."""
    context: str | None = None
    """The kubeconfig context (`$KUBECONFIG` or `~/.kube/config`; unset: the current one)."""

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return _dns(value, label=True)

    @field_validator("service_account", "step_service_account", "volume", "secret_name")
    @classmethod
    def _object_name(cls, value: str | None) -> str | None:
        return None if value is None else _dns(value, label=False)

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or value != value.strip()):
            raise ValueError(f"{value!r} is not an image reference")
        return value

    @field_validator("driver_memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        if not quantity.is_quantity(value):
            raise ValueError(f"{value!r} is not a quantity (e.g. 512Mi)")
        return value

    @field_validator("volume_path", "code_root")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or posixpath.normpath(value) != value or "\n" in value:
            raise ValueError(f"{value!r} is not a normalized absolute path")
        return value

    @model_validator(mode="after")
    def _artifact_root_reachable(self) -> KubernetesTargetSettings:
        root = self.artifact_root
        if root is None or "://" in root:
            return self
        if self.volume is None:
            raise SettingsError(
                f"target 'kubernetes': artifact_root {root!r} is a path, which step pods can "
                "only share on a volume: set `volume` (a PersistentVolumeClaim) or use an "
                "fsspec URL (s3://, gs://, ...)"
            )
        inside = posixpath.normpath(root)
        if inside != self.volume_path and not inside.startswith(self.volume_path + "/"):
            raise ValueError(
                f"artifact_root {root!r} is not under volume_path {self.volume_path!r}"
            )
        return self

    def resolved_artifact_root(self) -> str:
        """Where step outputs go: the setting, else the volume's mount path."""
        if self.artifact_root is not None:
            return self.artifact_root.rstrip("/") or "/"
        if self.volume is None:
            raise SettingsError(
                "target 'kubernetes' needs somewhere to keep step outputs: set artifact_root (an "
                "fsspec URL such as s3://bucket/prefix) or volume (a PersistentVolumeClaim "
                "mounted in every pod) in [tool.pipec.targets.kubernetes] or with --set"
            )
        return self.volume_path
