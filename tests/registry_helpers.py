"""A real image registry for tests: Debian's `docker-registry` (the CNCF distribution registry,
the same server as the `registry:2` image) on 127.0.0.1, filesystem storage in a temporary folder,
no TLS and no authentication; and the digest it gives for a tag, read over its own HTTP API."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_registry(folder: Path) -> Iterator[str]:
    """Run a registry while the generator is open; yield its `host:port`. Skip (fail in CI)
    without the `docker-registry` package."""
    server = shutil.which("docker-registry")
    if server is None:
        if os.environ.get("CI"):
            pytest.fail("docker-registry is not installed (.ci/apt installs it)")
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    port = free_port()
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {folder / 'data'}}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n",
        encoding="utf-8",
    )
    log = (folder / "registry.log").open("w")
    process = subprocess.Popen([server, "serve", str(config)], stdout=log, stderr=log)
    try:
        for _ in range(200):  # until it answers (a count, not a time limit)
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=5).close()
                break
            except OSError:
                assert process.poll() is None, (folder / "registry.log").read_text()
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait()
        log.close()


def manifest_digest(registry: str, repository: str, tag: str) -> str:
    """The digest the registry itself gives for `repository:tag`."""
    request = urllib.request.Request(
        f"http://{registry}/v2/{repository}/manifests/{tag}",
        method="HEAD",
        headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json, "
            "application/vnd.oci.image.manifest.v1+json"
        },
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return str(answer.headers["Docker-Content-Digest"])
