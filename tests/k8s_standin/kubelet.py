"""The stand-in's kubelet: runs a pod's one container on the local Docker engine.

What it honors: the image (through the stand-in's image map: nothing is pulled, an image that is
neither mapped nor present is `ErrImagePull`), `command` and `args` (with the kubelet's `$(VAR)`
expansion), `env` (values, `secretKeyRef` with `optional`, `fieldRef` on the pod's metadata),
volumes (`emptyDir`, `configMap` with `data` and `binaryData`, `persistentVolumeClaim` mapped to
host folders, with `fsGroup` ownership), the security context (`runAsUser`/`runAsGroup`/
`fsGroup`, `readOnlyRootFilesystem`, dropped capabilities, no privilege escalation), the service
account token (mounted, with the API server's address, unless `automountServiceAccountToken` is
false) and `activeDeadlineSeconds`.

Networking: a pod that mounts a service account token must reach the API server, so it shares
the host's network (the server listens on 127.0.0.1 only); every other pod gets
`--network none`: steps reach nothing but their volumes.

Not modelled: scheduling (nodes, node selectors, tolerations, resource requests and limits are
checked by `checks` but not enforced: no GPU, no CPU or memory limit, no OOMKilled), more than
one container, init containers, probes, image pulls, restarts inside a pod (restartPolicy is
Never for every Job pod pipec makes).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from expand import expand

JSON = dict[str, Any]
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
FIELD_LABEL = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class CannotStart(Exception):
    """The container cannot start: (waiting reason, message)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class NotYet(Exception):
    """The pod waits for something that may still appear (a ConfigMap, a claim)."""


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


class Kubelet:
    """Starts, watches and stops pod containers (called by the server with its lock held)."""

    def __init__(self, server: Any, state: Path, images: dict[str, str], pvcs: dict[str, Path]):
        self.server = server
        self.state = state
        self.images = images
        self.pvcs = pvcs
        self.label = f"pipec-standin={os.getpid()}"

    def image_of(self, image: str) -> str:
        local = self.images.get(image, image)
        if docker("image", "inspect", local, check=False).returncode != 0:
            raise CannotStart(
                "ErrImagePull",
                f'Failed to pull image "{image}": the stand-in pulls nothing and has no image '
                f"mapped to it",
            )
        return local

    def _env(self, pod: JSON, container: JSON) -> dict[str, str]:
        ns = pod["metadata"]["namespace"]
        env: dict[str, str] = {}
        for var in container.get("env") or []:
            name = var["name"]
            if "value" in var:
                env[name] = expand(var["value"], env)
                continue
            source = var.get("valueFrom") or {}
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                secret = self.server.get_object("secrets", ns, ref["name"])
                optional = ref.get("optional", False)
                if secret is None:
                    if optional:
                        continue
                    raise CannotStart(
                        "CreateContainerConfigError", f'secret "{ref["name"]}" not found'
                    )
                data = secret.get("data") or {}
                if ref["key"] not in data:
                    if optional:
                        continue
                    raise CannotStart(
                        "CreateContainerConfigError",
                        f"couldn't find key {ref['key']} in Secret {ns}/{ref['name']}",
                    )
                env[name] = base64.b64decode(data[ref["key"]]).decode()
            elif "fieldRef" in source:
                path = source["fieldRef"]["fieldPath"]
                meta = pod["metadata"]
                match = FIELD_LABEL.match(path)
                if match:
                    env[name] = (meta.get(match.group(1)) or {}).get(match.group(2), "")
                elif path in ("metadata.name", "metadata.namespace", "metadata.uid"):
                    env[name] = meta[path.split(".")[1]]
                else:
                    raise CannotStart("CreateContainerConfigError", f"unsupported fieldRef {path}")
            else:
                raise CannotStart("CreateContainerConfigError", f"unsupported env source {var}")
        return env

    def _volumes(
        self, pod: JSON, workdir: Path, fs_group: int | None
    ) -> dict[str, tuple[str, bool]]:
        ns = pod["metadata"]["namespace"]
        found: dict[str, tuple[str, bool]] = {}
        for volume in pod["spec"].get("volumes") or []:
            name = volume["name"]
            if "emptyDir" in volume:
                folder = workdir / f"empty-{name}"
                folder.mkdir()
                folder.chmod(0o1777)
                found[name] = (str(folder), False)
            elif "configMap" in volume:
                cm_name = volume["configMap"]["name"]
                configmap = self.server.get_object("configmaps", ns, cm_name)
                if configmap is None:
                    raise NotYet(f'configmap "{cm_name}" not found')
                folder = workdir / f"cm-{name}"
                folder.mkdir()
                for key, text in (configmap.get("data") or {}).items():
                    (folder / key).write_text(text, encoding="utf-8")
                for key, text in (configmap.get("binaryData") or {}).items():
                    (folder / key).write_bytes(base64.b64decode(text))
                for path in [folder, *folder.iterdir()]:
                    path.chmod(0o755 if path.is_dir() else 0o644)
                found[name] = (str(folder), True)
            elif "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                if claim not in self.pvcs:
                    raise NotYet(f'persistentvolumeclaim "{claim}" not found')
                folder = self.pvcs[claim]
                if fs_group is not None:  # the kubelet's fsGroup ownership management
                    subprocess.run(["chgrp", "-R", str(fs_group), str(folder)], check=True)
                    subprocess.run(["chmod", "-R", "g+rwX", str(folder)], check=True)
                    subprocess.run(
                        ["find", str(folder), "-type", "d", "-exec", "chmod", "g+s", "{}", "+"],
                        check=True,
                    )
                found[name] = (str(folder), False)
            else:
                raise CannotStart("CreateContainerConfigError", f"unsupported volume {name}")
        return found

    def start(self, pod: JSON) -> str:
        """Start the pod's container; return the container id. CannotStart / NotYet otherwise."""
        spec = pod["spec"]
        (container,) = spec["containers"]
        image = self.image_of(container["image"])
        env = self._env(pod, container)
        pod_sc = spec.get("securityContext") or {}
        sc = container.get("securityContext") or {}
        workdir = Path(tempfile.mkdtemp(prefix=f"pod-{pod['metadata']['name']}-", dir=self.state))
        workdir.chmod(0o755)
        volumes = self._volumes(pod, workdir, pod_sc.get("fsGroup"))
        args = ["run", "-d", "--label", self.label, "--name", f"standin-{pod['metadata']['uid']}"]
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
        if uid is not None:
            args += ["--user", f"{uid}:{gid if gid is not None else 0}"]
        if pod_sc.get("fsGroup") is not None:
            args += ["--group-add", str(pod_sc["fsGroup"])]
        if sc.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        if "ALL" in ((sc.get("capabilities") or {}).get("drop") or []):
            args += ["--cap-drop", "ALL"]
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        if spec.get("automountServiceAccountToken", True):
            account = spec.get("serviceAccountName", "default")
            token_dir = workdir / "token"
            token_dir.mkdir()
            ns = pod["metadata"]["namespace"]
            (token_dir / "token").write_text(self.server.token_for(ns, account))
            shutil.copy(self.server.ca_file, token_dir / "ca.crt")
            (token_dir / "namespace").write_text(ns)
            for path in [token_dir, *token_dir.iterdir()]:
                path.chmod(0o755 if path.is_dir() else 0o644)
            args += ["-v", f"{token_dir}:{TOKEN_DIR}:ro", "--network", "host"]
            env = {
                "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                "KUBERNETES_SERVICE_PORT": str(self.server.port),
                **env,
            }
        else:
            args += ["--network", "none"]
        for mount in container.get("volumeMounts") or []:
            host, read_only = volumes[mount["name"]]
            ro = read_only or mount.get("readOnly", False)
            args += ["-v", f"{host}:{mount['mountPath']}" + (":ro" if ro else "")]
        for name, value in env.items():
            args += ["-e", f"{name}={value}"]
        command = [expand(c, env) for c in container.get("command") or []]
        cargs = [expand(a, env) for a in container.get("args") or []]
        if command:
            args += ["--entrypoint", command[0], image, *command[1:], *cargs]
        else:
            args += [image, *cargs]
        done = docker(*args, check=False)
        if done.returncode != 0:
            raise CannotStart("CreateContainerError", done.stderr.strip()[-500:])
        return done.stdout.strip()

    def state_of(self, container_id: str) -> JSON | None:
        """None while running; else {"exitCode", "reason", "finishedAt"}."""
        done = docker("inspect", container_id, check=False)
        if done.returncode != 0:
            return {"exitCode": 137, "reason": "ContainerGone"}
        state = json.loads(done.stdout)[0]["State"]
        if state.get("Running"):
            return None
        code = int(state.get("ExitCode", 1))
        reason = "OOMKilled" if state.get("OOMKilled") else ("Completed" if code == 0 else "Error")
        return {"exitCode": code, "reason": reason}

    def logs(self, container_id: str) -> str:
        done = docker("logs", container_id, check=False)
        return done.stdout + done.stderr

    def kill(self, container_id: str) -> None:
        docker("kill", container_id, check=False)

    def stop(self, container_id: str, grace: int) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds if the container still runs."""
        docker("stop", "--time", str(grace), container_id, check=False)

    def remove(self, container_id: str) -> None:
        docker("rm", "-f", container_id, check=False)

    def cleanup(self) -> None:
        ids = docker("ps", "-aq", "--filter", f"label={self.label}", check=False).stdout.split()
        if ids:
            docker("rm", "-f", *ids, check=False)
