"""The Docker engine, through the Docker SDK's low-level client (the Engine API; never the CLI).

`connect()` imports the SDK only when a run needs it (compiling never does) and turns "no SDK"
and "no engine" into one line that says what to do. `Engine` holds what the target asks of the
engine besides running steps (`executor`): image ids, builds, one-shot probe containers, facts
about the engine, and removing a run's containers by their labels.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipec.ir.diagnostics import InvalidInput

LABEL_RUN = "pipec.run"
LABEL_STEP = "pipec.step"
LABEL_ITERATION = "pipec.iteration"
LABEL_ATTEMPT = "pipec.attempt"
LABEL_INPUTS = "pipec.inputs"
"""On images pipec built: the content hash of everything that went into them."""

BUILD_TIMEOUT = 3600
"""Seconds a build may go without a word (installing big wheels says nothing for a while)."""
START_ENGINE = (
    "start one (`sudo systemctl start docker`, `sudo dockerd &`, or Docker Desktop) or point "
    "DOCKER_HOST at one"
)


class EngineError(InvalidInput):
    """The engine cannot do what the run needs (no SDK, no engine, a missing or unusable image):
    one line, exit 2, and nothing has run."""


class BuildError(EngineError):
    """An image pipec builds could not be built; the message ends with the builder's last lines."""


def _sdk() -> Any:
    try:
        import docker  # type: ignore[import-untyped]
    except ImportError:
        raise EngineError(
            "target 'local_docker' and `pipec build` need the Docker SDK for Python: pip "
            "install 'pipec[local_docker]'"
        ) from None
    return docker


def connect() -> Engine:
    """The engine DOCKER_HOST (or the default socket) points at; EngineError when none answers."""
    docker = _sdk()
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    options = docker.utils.kwargs_from_env()
    try:
        api = docker.APIClient(version="auto", **options)
    except docker.errors.DockerException:
        raise EngineError(f"no Docker engine answers at {where}: {START_ENGINE}") from None
    return Engine(api, docker, {**options, "version": api.api_version})


class Engine:
    """One connection to the engine (see the module docstring)."""

    def __init__(self, api: Any, sdk: Any, options: Mapping[str, Any] | None = None) -> None:
        self.api = api
        self.sdk = sdk
        self.options = dict(options or {})
        self._info: dict[str, Any] | None = None

    def client(self) -> Any:
        """Another client of the same engine, for a thread of its own (the SDK's client is not
        made to be shared between threads)."""
        return self.sdk.APIClient(**self.options)

    # ---------------------------------------------------------------------------------- images

    def image_id(self, ref: str) -> str | None:
        """The id of image `ref` on this engine, or None when it has no such image."""
        try:
            found = self.api.inspect_image(ref)
        except self.sdk.errors.ImageNotFound:
            return None
        except self.sdk.errors.APIError as exc:
            if exc.status_code in (400, 404):  # a malformed reference is not there either
                return None
            raise
        return str(found["Id"])

    def build(
        self,
        context: Path,
        dockerfile: str,
        tag: str,
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> None:
        """`docker build` of `context` with no network inside the build; BuildError with the
        builder's last lines when it fails."""
        lines: list[str] = []
        try:
            for chunk in self.api.build(
                path=str(context),
                dockerfile=dockerfile,
                tag=tag,
                buildargs=dict(buildargs),
                labels=dict(labels),
                network_mode="none",
                timeout=BUILD_TIMEOUT,
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
            ):
                if "stream" in chunk:
                    lines.extend(str(chunk["stream"]).splitlines())
                if "error" in chunk:
                    lines.append(str(chunk["error"]))
                    raise BuildError(_build_failure(tag, lines))
        except self.sdk.errors.APIError as exc:
            raise BuildError(_build_failure(tag, [*lines, str(exc.explanation or exc)])) from None
        if self.image_id(tag) is None:
            raise BuildError(_build_failure(tag, lines))

    def tag(self, image: str, ref: str) -> None:
        """Give image `image` the name `ref` (`repository:tag`) as well."""
        repository, _, tag = ref.rpartition(":")
        self.api.tag(image, repository, tag)

    def push(self, ref: str) -> str:
        """Push `repository:tag` to its registry; the manifest digest the registry answered
        (`sha256:...`). EngineError naming the registry when it cannot be reached or refuses."""
        repository, _, tag = ref.rpartition(":")
        digest: str | None = None
        last: list[str] = []
        try:
            for chunk in self.api.push(repository, tag=tag, stream=True, decode=True):
                if "error" in chunk:
                    raise EngineError(_push_failure(ref, str(chunk["error"])))
                found = (chunk.get("aux") or {}).get("Digest")
                if found:
                    digest = str(found)
                if chunk.get("status"):
                    last = [str(chunk["status"])]
        except self.sdk.errors.APIError as exc:
            raise EngineError(_push_failure(ref, str(exc.explanation or exc))) from None
        if digest is None:
            raise EngineError(_push_failure(ref, last[0] if last else "no digest in the answer"))
        return digest

    # ------------------------------------------------------------------------------ containers

    def run_once(self, image: str, command: Sequence[str], network: str | None) -> tuple[int, str]:
        """Run `command` in a throwaway container of `image`: (exit code, its output). An
        engine that cannot start the command (no such executable) gives exit code 127 and the
        engine's words."""
        host = self.api.create_host_config(network_mode=network)
        config = self.api.create_container_config(
            image, None, entrypoint=list(command), host_config=host
        )
        container = self.api.create_container_from_config(config)["Id"]
        try:
            try:
                self.api.start(container)
            except self.sdk.errors.APIError as exc:
                return 127, str(exc.explanation or exc)
            code = int(self.api.wait(container)["StatusCode"])
            output = self.api.logs(container, stdout=True, stderr=True)
            return code, output.decode("utf-8", "replace")
        finally:
            with contextlib.suppress(self.sdk.errors.APIError):
                self.api.remove_container(container, force=True, v=True)

    def containers_of_run(self, run_id: str) -> list[str]:
        """Ids of every container (running or not) labelled with run `run_id`."""
        found = self.api.containers(
            all=True, quiet=True, filters={"label": f"{LABEL_RUN}={run_id}"}
        )
        return [str(c["Id"]) for c in found]

    def remove_run_containers(self, run_id: str) -> int:
        """Stop and remove every container of run `run_id` (what a killed runner left behind);
        how many there were."""
        ids = self.containers_of_run(run_id)
        for container in ids:
            self.remove(container)
        return len(ids)

    def remove(self, container: str) -> None:
        """Remove a container, killing it first if it still runs (gone already is fine)."""
        with contextlib.suppress(self.sdk.errors.NotFound):
            try:
                self.api.remove_container(container, force=True, v=True)
            except self.sdk.errors.APIError as exc:
                if exc.status_code != 409:  # 409: its removal is already under way
                    raise

    def check_network(self, network: str | None) -> None:
        """EngineError when the `network` setting names a network this engine does not have."""
        if network is None or network.startswith("container:"):
            return
        try:
            self.api.inspect_network(network)
        except self.sdk.errors.NotFound:
            raise EngineError(
                f"network {network!r} (the network setting) is not on this Docker engine: "
                f"create it (`docker network create {network}`) or use one `docker network ls` "
                "lists (`none` cuts steps off)"
            ) from None

    # ---------------------------------------------------------------------------------- facts

    def info(self) -> dict[str, Any]:
        """`docker info` (asked once)."""
        if self._info is None:
            self._info = dict(self.api.info())
        return self._info

    def has_gpu_runtime(self) -> bool:
        """Whether the engine can hand GPUs to containers (the NVIDIA runtime is installed)."""
        return any("nvidia" in name for name in self.info().get("Runtimes", {}))

    def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(Exception):
            self.api.close()


def _build_failure(tag: str, lines: list[str]) -> str:
    tail = " | ".join(line.strip() for line in _last(lines, 6) if line.strip())
    return f"building image {tag} failed: {tail or 'no output from the builder'}"


def _push_failure(ref: str, why: str) -> str:
    registry = ref.split("/")[0]
    return (
        f"cannot push {ref} to registry {registry} ({why.strip()}): check that the registry "
        "runs and that the `registry` setting names it (a registry other than 127.0.0.1 needs "
        "TLS or an `insecure-registries` entry in the engine's daemon.json)"
    )


def _last(lines: list[str], n: int) -> Iterator[str]:
    yield from lines[-n:]
