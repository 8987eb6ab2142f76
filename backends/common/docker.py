"""What a step's container needs from a Docker daemon, decided once for every target that starts
steps with Docker (airflow's DockerOperator mode; local_docker next).

The policy is the Kubernetes one (`common.k8s`) in Docker's terms:

* **CPU is a share, not a cap**: `cpus` becomes the container's CPU weight (`CpuShares`, 1024 per
  CPU: what the kubelet gives a CPU request), so a busy host splits its CPUs in proportion and an
  idle one lets the step use them all. A `NanoCpus` quota would be the CPU limit the policy leaves
  out. (Airflow's DockerOperator turns its `cpus` argument into the same shares.)
* **Memory is a hard limit** (`Memory`, in bytes from the quantity): what a step asked for is what
  it gets, and outgrowing it kills that step, not a neighbour.
* **GPUs** are a device request for that many GPUs (`DeviceRequests` with the `gpu` capability).
  Docker picks devices by count or id, never by model, so a GPU type has no Docker form; nor does
  a disk request (the daemon cannot size a container's writable layer on most storage drivers).
  Targets report both as diagnostics.
* **The artifact root**, when it is a host folder, is bind-mounted at the same path, so the paths
  a step is given mean the same inside the container; a URL root needs no mount.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipec.ir import quantity
from pipec.ir.model import Resources

CPU_SHARES_PER_CPU = 1024
MIN_CPU_SHARES = 2  # the kernel's (and the kubelet's) smallest weight
GPU_CAPABILITIES = (("gpu",),)


@dataclass(frozen=True)
class ContainerNeeds:
    """What one step's container needs (see the module docstring)."""

    cpus: float | None = None
    memory_bytes: int | None = None
    gpus: int = 0
    bind_mounts: tuple[str, ...] = ()
    """Host folders mounted at the same path inside the container."""

    @property
    def cpu_shares(self) -> int | None:
        """The CPU weight the daemon is given (`CpuShares`)."""
        if self.cpus is None:
            return None
        return max(MIN_CPU_SHARES, round(self.cpus * CPU_SHARES_PER_CPU))

    def device_requests(self, devices: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """`DeviceRequests` as the Docker API spells them: `devices` when the scheduler gave the
        step specific GPUs, else any `gpus` of them."""
        if not self.gpus:
            return []
        capabilities = [list(c) for c in GPU_CAPABILITIES]
        if devices:
            return [{"DeviceIDs": list(devices), "Capabilities": capabilities}]
        return [{"Count": self.gpus, "Capabilities": capabilities}]


def container_needs(resources: Resources, artifact_root: str | None) -> ContainerNeeds:
    """A step's container needs from its resources and the target's artifact root."""
    return ContainerNeeds(
        cpus=resources.cpu,
        memory_bytes=None if resources.memory is None else quantity.to_bytes(resources.memory),
        gpus=resources.gpu or 0,
        bind_mounts=(artifact_root,) if artifact_root and artifact_root.startswith("/") else (),
    )
