"""The pytest side of the stand-in: the test image, a running stand-in API server with a
kubeconfig for it, and helpers to read what the server holds.

The image (`pipec-k8s-test`) is Debian's python3 (`pipec-base`, built by `.ci/docker`) with
pipec and its `kubernetes` extra and scikit-learn installed from the host (nothing is fetched
inside Docker), the examples under /app and `cases.py` at its module path; it is rebuilt when
its inputs change (a content label). Every image a pipeline names is mapped to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE = "pipec-k8s-test"
HERE = Path(__file__).resolve().parent


def _fail_or_skip(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def build_image() -> str:
    """Start Docker, build pipec-base (.ci/docker), then this image when its inputs changed."""
    if shutil.which("docker") is None and shutil.which("apt-get") is None:
        _fail_or_skip("Docker is not installed and cannot be installed here")
    done = subprocess.run(
        ["bash", str(REPO / ".ci" / "docker")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        _fail_or_skip(f".ci/docker failed: {done.stderr.strip()[-2000:]}")
    files = subprocess.run(
        [
            "git",
            "ls-files",
            "pyproject.toml",
            "compiler",
            "ir",
            "backends",
            "examples",
            "tests/k8s_standin/cases.py",
            "tests/k8s_standin/reference.py",
            "tests/k8s_standin/harness.py",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + (REPO / name).read_bytes())
    want = digest.hexdigest()
    have = subprocess.run(
        [
            "docker",
            "image",
            "inspect",
            IMAGE,
            "--format",
            '{{index .Config.Labels "pipec.inputs"}}',
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if have == want:
        return IMAGE
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Path(tmp)
        subprocess.run(
            [
                str(REPO / ".venv" / "bin" / "pip"),
                "install",
                "-q",
                "--disable-pip-version-check",
                "--no-compile",
                "--target",
                str(ctx / "site"),
                f"{REPO}[kubernetes,sklearn]",  # the examples import scikit-learn and pandas
            ],
            check=True,
            capture_output=True,
        )
        shutil.copytree(REPO / "examples", ctx / "app" / "examples")
        (ctx / "app" / "tests" / "k8s_standin").mkdir(parents=True)
        shutil.copy(HERE / "cases.py", ctx / "app" / "tests" / "k8s_standin" / "cases.py")
        shutil.copy(HERE / "reference.py", ctx / "reference.py")
        (ctx / "Dockerfile").write_text(
            "FROM pipec-base\nCOPY site /opt/pipec/site\nCOPY app /app\n"
            "COPY reference.py /opt/pipec/reference.py\n"
            # As an image meant to run as a non-root user would: its working directory is that
            # user's (iris writes its registry there when the root is not read-only).
            "RUN chown -R 65532:65532 /app\n"
            "ENV PYTHONPATH=/opt/pipec/site PYTHONDONTWRITEBYTECODE=1\nWORKDIR /app\n"
            f"LABEL pipec.inputs={want}\n"
        )
        subprocess.run(
            ["docker", "build", "-q", "--network", "none", "-t", IMAGE, str(ctx)],
            check=True,
            capture_output=True,
        )
    return IMAGE


@dataclass
class StandIn:
    """A running stand-in: its address, the admin kubeconfig, the claim's host folder."""

    port: int
    token: str
    kubeconfig: Path
    pvc: Path
    log: Path
    process: subprocess.Popen[str]

    def env(self) -> dict[str, str]:
        """The environment for `pipec` talking to the stand-in."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def api(self) -> Any:
        """An admin kubernetes ApiClient."""
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(str(self.kubeconfig), client_configuration=configuration)
        return client.ApiClient(configuration)

    def get(self, path: str) -> bytes:
        """GET a URL path as admin; the body."""
        context = ssl.create_default_context(cafile=str(self.kubeconfig.parent / "tls.crt"))
        request = urllib.request.Request(
            f"https://127.0.0.1:{self.port}{path}",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        with urllib.request.urlopen(request, context=context, timeout=60) as response:
            body: bytes = response.read()
            return body

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST JSON as admin, bypassing the client's own checks: (status, answer)."""
        context = ssl.create_default_context(cafile=str(self.kubeconfig.parent / "tls.crt"))
        request = urllib.request.Request(
            f"https://127.0.0.1:{self.port}{path}",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def objects(self, path: str, selector: str = "") -> list[dict[str, Any]]:
        """Items of a list URL path (e.g. /apis/batch/v1/namespaces/ns/jobs)."""
        query = f"?labelSelector={urllib.parse.quote(selector)}" if selector else ""
        items: list[dict[str, Any]] = json.loads(self.get(path + query))["items"]
        return items


def start_standin(tool_python: Path, base: Path, images: dict[str, str]) -> Iterator[StandIn]:
    """Start the server (certificate, claim folder, kubeconfig); stop it and its containers."""
    base.mkdir(parents=True, exist_ok=True)
    cert, key = base / "tls.crt", base / "tls.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=standin",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    pvc = base / "pvc"
    pvc.mkdir()
    (base / "state").mkdir()
    log = base / "server.log"
    args = [
        str(tool_python),
        str(HERE / "server.py"),
        "--state",
        str(base / "state"),
        "--cert",
        str(cert),
        "--key",
        str(key),
        "--pvc",
        f"pipec-artifacts={pvc}",
        "--backoff",
        "1",
    ]
    for name, local in images.items():
        args += ["--image", f"{name}={local}"]
    with log.open("w") as err:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True)
    assert process.stdout is not None
    first = process.stdout.readline()
    if not first:
        raise AssertionError(f"the stand-in did not start: {log.read_text()[-3000:]}")
    info = json.loads(first)
    kubeconfig = base / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "standin",
                "clusters": [
                    {
                        "name": "standin",
                        "cluster": {
                            "server": f"https://127.0.0.1:{info['port']}",
                            "certificate-authority": str(cert),
                        },
                    }
                ],
                "users": [{"name": "admin", "user": {"token": info["token"]}}],
                "contexts": [
                    {"name": "standin", "context": {"cluster": "standin", "user": "admin"}}
                ],
            }
        )
    )
    try:
        yield StandIn(info["port"], info["token"], kubeconfig, pvc, log, process)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        ids = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=pipec-standin={process.pid}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)
