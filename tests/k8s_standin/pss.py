"""The restricted Pod Security Standard (the policy as of Kubernetes 1.30, "latest"), checked
over one pod spec: what the API server's PodSecurity admission enforces in a namespace labelled
`pod-security.kubernetes.io/enforce: restricted`. Standard library only: the stand-in API
server (another Python environment) runs it on every pod it admits, and the tests on every pod
template.

`violations(spec)` returns one line per broken rule (empty when the pod is admitted).
`pipec_violations(spec)` adds what pipec promises beyond the standard: a read-only root file
system in every container.
"""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]

RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def _containers(spec: JSON) -> list[JSON]:
    return [
        *(spec.get("initContainers") or []),
        *(spec.get("containers") or []),
        *(spec.get("ephemeralContainers") or []),
    ]


def violations(spec: JSON) -> list[str]:
    """Every rule of the baseline and restricted levels that `spec` breaks."""
    found: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            found.append(f"{key} is true")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volume {volume.get('name')!r} has type {', '.join(sorted(kinds))}")
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            found.append(f"sysctl {sysctl.get('name')!r} is not safe")
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        found.append("pod windowsOptions.hostProcess is true")
    if (pod_sc.get("seLinuxOptions") or {}).get("type", "") not in SELINUX_TYPES:
        found.append("pod seLinuxOptions.type is not allowed")
    if pod_sc.get("runAsUser") == 0:
        found.append("pod runAsUser is 0")
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost"):
        found.append(f"pod seccompProfile is {pod_seccomp}")
    for c in _containers(spec):
        name = c.get("name")
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            found.append(f"container {name!r} is privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"container {name!r} must set allowPrivilegeEscalation=false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            found.append(f"container {name!r} must drop capabilities ALL")
        added = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            found.append(f"container {name!r} adds capabilities {sorted(added)}")
        if sc.get("runAsNonRoot") is False or (
            sc.get("runAsNonRoot") is None and pod_sc.get("runAsNonRoot") is not True
        ):
            found.append(f"container {name!r} must run as non-root (runAsNonRoot=true)")
        if sc.get("runAsUser") == 0:
            found.append(f"container {name!r} runAsUser is 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if seccomp is None and pod_seccomp is None:
            found.append(f"container {name!r} has no seccompProfile (RuntimeDefault or Localhost)")
        elif seccomp not in (None, "RuntimeDefault", "Localhost"):
            found.append(f"container {name!r} seccompProfile is {seccomp}")
        if sc.get("procMount") not in (None, "Default"):
            found.append(f"container {name!r} procMount is {sc.get('procMount')}")
        if (sc.get("seLinuxOptions") or {}).get("type", "") not in SELINUX_TYPES:
            found.append(f"container {name!r} seLinuxOptions.type is not allowed")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                found.append(f"container {name!r} uses hostPort {port['hostPort']}")
    return found


def pipec_violations(spec: JSON) -> list[str]:
    """The standard's rules plus pipec's own: every container's root file system read-only."""
    found = violations(spec)
    for c in _containers(spec):
        if (c.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True:
            found.append(f"container {c.get('name')!r} root file system is writable")
    return found


def pod_templates(obj: JSON) -> list[JSON]:
    """The pod specs inside an object (a Pod, a Job, a CronJob; none in others)."""
    kind = obj.get("kind")
    if kind == "Pod":
        return [obj.get("spec") or {}]
    if kind == "Job":
        return [((obj.get("spec") or {}).get("template") or {}).get("spec") or {}]
    if kind == "CronJob":
        job = ((obj.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}
        return [(job.get("template") or {}).get("spec") or {}]
    return []
