"""The Docker executor: every step attempt in a container of its own on the local engine.

`start` creates the container (labels: run, step, iteration, attempt; cpu/memory/GPUs as
`common.docker` decides; the project mounted read-only at its own path, the artifact root
read-write, the project's `.env` hidden), attaches to its stdin, stdout and stderr, starts it, and
sends the launcher (`launcher.py`, the container's command) the step's command line and
environment. Secret values travel only over that attached stream: never in the container's
configuration, an image, a label or the metadata store. A thread per container copies its output
into the step's log with secret values masked; when the output ends it reads how the container
ended (exit code, OOM kill) for `wait`. A runner that dies closes the stream, and the launcher
then ends the step, so no container runs on unwatched.

The containers of the steps that come next are made ahead, while the current step runs
(`ahead.py`): `start` then only sends the request to a container already started.

`wait` reports ends and kills containers past their timeout. `kill` kills a running container;
once it has ended, it is removed in the background (off the steps' critical path). `close`
removes whatever is left of the run, found by its label.
"""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipec.backends.common import docker as policy
from pipec.backends.images.engine import (
    LABEL_ATTEMPT,
    LABEL_ITERATION,
    LABEL_RUN,
    LABEL_STEP,
    Engine,
)
from pipec.backends.local_docker import launcher
from pipec.backends.local_docker.ahead import Ahead, Spare
from pipec.backends.local_docker.streams import Masker, frames, raw
from pipec.backends.runner.capacity import CUDA_VISIBLE_DEVICES
from pipec.backends.runner.executor import Exit, Launch
from pipec.backends.runner.plan import Plan, PlanStep
from pipec.backends.runner.results import RunError
from pipec.backends.runner.runs import _artifact_root
from pipec.backends.runtime.invocation import module_args
from pipec.ir.model import Resources

ENGINE_ERROR = 125  # what `docker run` exits with when the engine cannot start the container
LAUNCHER_SOURCE = Path(launcher.__file__).read_text(encoding="utf-8")


@dataclass(frozen=True)
class DockerExit(Exit):
    """An attempt's end with what only a container can say: killed by the OOM killer, or a
    `problem` with the engine (it refused to start the container, or never said how it ended)."""

    oom_killed: bool = False
    memory: str | None = None
    problem: str | None = None


@dataclass(frozen=True)
class ContainerOptions:
    """What every step container of a run shares (from the target's settings)."""

    python: str = "python3"
    network: str | None = None
    mount_code: bool = True
    """Mount the project read-only (False when the code is baked into the image)."""
    workdir: str | None = None
    """The working directory when the project is not mounted (None: the project root)."""


@dataclass(eq=False)
class StepContainer:
    """One running (or ended) step container. Its timeout counts from the container's start."""

    memory: str | None
    timeout: float | None
    deadline: float | None = None
    id: str | None = None
    stream: Any = None
    timed_out: bool = False
    ended: bool = False
    removed: bool = False
    pump: threading.Thread | None = None
    masks: Sequence[str] = field(default_factory=tuple)


class DockerExecutor:
    """Runs each step attempt in its own container (see the module docstring)."""

    def __init__(
        self, engine: Engine, options: ContainerOptions, resuming: str | None = None
    ) -> None:
        """`resuming` is the id of the run this executor continues (None: a new run)."""
        self.engine = engine
        self.options = options
        self.resuming = resuming
        self.run_id: str | None = resuming
        self.mounts: list[dict[str, Any]] = []
        self.live: set[StepContainer] = set()
        self.ended: queue.SimpleQueue[tuple[StepContainer, Exit]] = queue.SimpleQueue()
        self.finished: dict[StepContainer, Exit] = {}
        self.removals: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.remover: threading.Thread | None = None
        self.project_root = Path()
        self.ahead: Ahead | None = None

    # --------------------------------------------------------------------------- the protocol

    def prepare(self, plan: Plan, project_root: Path) -> None:
        """Check that every image of the plan is on the engine (RunError: no step could run),
        remove what a killed runner left of a resumed run (the run is ours by now), decide the
        mounts every container gets, and start the background remover."""
        for image in sorted({step.image for step in plan.steps.values() if step.image}):
            if self.engine.image_id(image) is None:
                raise RunError(
                    f"image {image} of this run is no longer on this Docker engine: start a new "
                    "run (unchanged steps come from the cache)"
                )
        if self.resuming is not None:
            self.engine.remove_run_containers(self.resuming)
        root = _artifact_root(plan.settings.artifact_root, project_root)
        self.mounts = []
        if self.options.mount_code:
            self.mounts.append(_bind(str(project_root), read_only=True))
            dotenv = project_root / ".env"
            if dotenv.is_file():  # secrets reach steps through their environment only
                self.mounts.append(_bind("/dev/null", read_only=True, target=str(dotenv)))
        for folder in policy.container_needs(Resources(), root).bind_mounts:
            Path(folder).mkdir(parents=True, exist_ok=True)
            self.mounts.append(_bind(folder, read_only=False))
        self.remover = threading.Thread(target=self._remove_in_background, daemon=True)
        self.remover.start()
        self.project_root = project_root
        self.ahead = Ahead(plan, self._make_spare, self._drop_spare)

    def start(self, launch: Launch) -> StepContainer:
        """Take the step's container made ahead, or create, attach and start one; send the
        launcher its request; make the next steps' containers ahead."""
        timeout = launch.timeout
        handle = StepContainer(
            memory=launch.step.resources.memory, timeout=timeout, masks=tuple(launch.masks)
        )
        self.run_id = launch.env.get("PIPEC_RUN_ID", self.run_id)
        self.live.add(handle)
        first = launch.attempt == 1 and not launch.env.get("PIPEC_ITERATION")
        if self.ahead is not None:
            self.ahead.launched(launch.step, first)
        try:
            if not self._take_spare(handle, launch, first):
                handle.id = self._create(
                    self.engine.api, launch.step, launch.image, self._labels(launch), launch.gpus
                )
                handle.stream = self._attach(self.engine.api, handle.id)
                self.engine.api.start(handle.id)
            handle.deadline = time.monotonic() + timeout if timeout else None
            raw(handle.stream).sendall(_request(launch, self.options.python, self._workdir(launch)))
        except (self.engine.sdk.errors.APIError, OSError) as exc:
            explained = getattr(exc, "explanation", None) or exc
            problem = f"the engine could not start the container: {explained}"
            _append(launch.log_path, f"pipec: {problem}\n")
            self._close_stream(handle)
            self.ended.put((handle, DockerExit(ENGINE_ERROR, problem=problem)))
            return handle
        handle.pump = threading.Thread(
            target=self._pump, args=(handle, launch.log_path), daemon=True
        )
        handle.pump.start()
        return handle

    def wait(
        self, handles: Sequence[StepContainer], timeout: float
    ) -> list[tuple[StepContainer, Exit]]:
        """Wait up to `timeout` seconds (less when a deadline comes first) for any of `handles`
        to end; kill the containers that ran out of time (their ends come on a later call)."""
        now = time.monotonic()
        deadlines = [h.deadline for h in handles if h.deadline is not None and not h.timed_out]
        until = min([now + max(0.0, timeout), *deadlines])
        wanted = set(handles)
        while not any(h in self.finished for h in wanted):
            left = until - time.monotonic()
            if left <= 0:
                break
            try:
                handle, exit = self.ended.get(timeout=left)
            except queue.Empty:
                break
            self.finished[handle] = exit
        while True:  # whatever else has ended by now
            try:
                handle, exit = self.ended.get_nowait()
            except queue.Empty:
                break
            self.finished[handle] = exit
        now = time.monotonic()
        for handle in handles:
            late = handle.deadline is not None and now >= handle.deadline
            if late and not handle.timed_out and handle not in self.finished:
                handle.timed_out = True
                self._kill_container(handle)
        done = [(h, self.finished.pop(h)) for h in handles if h in self.finished]
        for handle, _ in done:
            handle.ended = True
            self.live.discard(handle)
        return [(h, self._timed(h, exit)) for h, exit in done]

    def kill(self, handle: StepContainer) -> None:
        """Kill a running container; remove an ended one (in the background)."""
        if not handle.ended:
            self._kill_container(handle)
            return
        if handle.id is not None and not handle.removed:
            handle.removed = True
            self.removals.put(handle.id)

    def describe_exit(self, exit: Exit) -> str:
        """Words for how a failed attempt ended."""
        if exit.timed_out_after is not None:
            return f"timed out after {exit.timed_out_after:g}s (container killed and removed)"
        if isinstance(exit, DockerExit) and exit.oom_killed:
            limit = f" (memory limit {exit.memory})" if exit.memory else ""
            return f"killed by the OOM killer{limit}"
        if isinstance(exit, DockerExit) and exit.problem is not None:
            return exit.problem
        if exit.code >= 0:
            return f"exit code {exit.code}"
        try:
            name = signal.Signals(-exit.code).name
        except ValueError:
            name = f"signal {-exit.code}"
        return f"killed by {name}"

    def close(self) -> None:
        """Kill what still runs, wait for the removals, and remove every container left with
        this run's label (one created just as the run was interrupted, say)."""
        if self.ahead is not None:
            self.ahead.close()
        for handle in list(self.live):
            self._kill_container(handle)
        for handle in list(self.live):
            if handle.pump is not None:
                handle.pump.join(timeout=10)
        if self.remover is not None:
            self.removals.put(None)
            self.remover.join(timeout=60)
            self.remover = None
        if self.run_id is not None:
            self.engine.remove_run_containers(self.run_id)

    # ------------------------------------------------------------------------------- helpers

    def _labels(self, launch: Launch) -> dict[str, str]:
        return _labels(
            launch.env.get("PIPEC_RUN_ID", ""),
            launch.step.id,
            launch.env.get("PIPEC_ITERATION", ""),
            launch.attempt,
        )

    def _create(
        self,
        api: Any,
        step: PlanStep,
        image: str | None,
        labels: dict[str, str],
        gpus: tuple[str, ...] = (),
    ) -> str:
        """Create the container of one attempt (`labels` say which) with `api` (a client of
        the calling thread)."""
        needs = policy.container_needs(step.resources, None)
        host = api.create_host_config(
            network_mode=self.options.network,
            cpu_shares=needs.cpu_shares,
            mem_limit=needs.memory_bytes,
            # No swap on top: outgrowing the limit ends the step, as on Kubernetes.
            memswap_limit=needs.memory_bytes,
            log_config={"Type": "none", "Config": {}},  # output goes to the step's log only
        )
        host["Mounts"] = list(self.mounts)
        if needs.gpus:
            host["DeviceRequests"] = needs.device_requests(gpus)
        config = api.create_container_config(
            image,
            None,
            entrypoint=[self.options.python, "-c", LAUNCHER_SOURCE],
            stdin_open=True,
            labels=labels,
            working_dir=self._workdir_of(self.project_root),
            host_config=host,
        )
        config["StdinOnce"] = True  # the runner's end closes the step's stdin (see launcher)
        iteration = labels[LABEL_ITERATION]
        suffix = f"-{iteration}" if iteration else ""
        name = f"pipec-{labels[LABEL_RUN]}-{step.id}{suffix}-{labels[LABEL_ATTEMPT]}"
        try:
            return str(api.create_container_from_config(config, name)["Id"])
        except self.engine.sdk.errors.APIError as exc:
            if exc.status_code != 409:
                raise
            # A container of the same run, step and attempt left by a runner that was killed.
            Engine(api, self.engine.sdk).remove(name)
            return str(api.create_container_from_config(config, name)["Id"])

    def _attach(self, api: Any, container: str) -> Any:
        stream = api.attach_socket(
            container, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        )
        raw(stream).settimeout(None)  # the stream stays open as long as the step
        return stream

    # ------------------------------------------------------------------ containers made ahead

    def _take_spare(self, handle: StepContainer, launch: Launch, first: bool) -> bool:
        """Give `handle` the container made ahead for this attempt (`first`: a first attempt
        outside any loop), if there is a usable one (one that is not is removed now: the
        attempt's own container takes its name)."""
        spare = self.ahead.take(launch.step) if self.ahead is not None else None
        if spare is None:
            return False
        usable = (
            first and spare.image == launch.image and spare.step == launch.step and not launch.gpus
        )
        if usable and spare.id is not None and spare.stream is not None:
            handle.id, handle.stream = spare.id, spare.stream
            return True
        self._close_stream(spare)
        if spare.id is not None:
            self.engine.remove(spare.id)
        return False

    def _make_spare(self, spare: Spare) -> None:
        """Create, attach and start a container made ahead (on the spare's own thread, with a
        client of its own); on failure its step makes its own (and `close` sweeps)."""
        api = self.engine.client()
        try:
            labels = _labels(self.run_id or "", spare.step.id, "", 1)
            spare.id = self._create(api, spare.step, spare.image, labels)
            spare.stream = self._attach(api, spare.id)
            api.start(spare.id)
        except Exception:
            self._close_stream(spare)
            spare.stream = None
        finally:
            api.close()

    def _drop_spare(self, spare: Spare) -> None:
        """A container made ahead that no step takes: its launcher ends when its stdin closes;
        the container is removed in the background."""
        self._close_stream(spare)
        if spare.id is not None:
            self.removals.put(spare.id)

    def _workdir(self, launch: Launch) -> str:
        return self._workdir_of(launch.cwd)

    def _workdir_of(self, project_root: Path) -> str:
        if self.options.mount_code or self.options.workdir is None:
            return str(project_root)
        return self.options.workdir

    def _pump(self, handle: StepContainer, log_path: Path) -> None:
        """Copy the container's output into the log (masked) until it ends; report the end."""
        masker = Masker(handle.masks)
        exit: Exit = DockerExit(
            ENGINE_ERROR, problem="the engine never said how the container ended"
        )
        try:
            with log_path.open("ab", buffering=0) as log:
                for data in frames(handle.stream):
                    log.write(masker.feed(data))
                log.write(masker.finish())
        except OSError:
            pass  # the stream broke: the container's own end is what counts
        finally:
            self._close_stream(handle)
            try:
                exit = self._exit_of(handle)
            finally:
                self.ended.put((handle, exit))

    def _exit_of(self, handle: StepContainer) -> Exit:
        api = self.engine.client()  # this runs in the container's own thread
        try:
            state = api.inspect_container(handle.id)["State"]
            if state.get("Running"):  # the output ended a moment before the process did
                api.wait(handle.id)
                state = api.inspect_container(handle.id)["State"]
            code = int(state["ExitCode"])
        except self.engine.sdk.errors.APIError as exc:
            problem = f"the engine could not say how the container ended: {exc.explanation or exc}"
            return DockerExit(ENGINE_ERROR, problem=problem)
        finally:
            api.close()
        if state.get("OOMKilled"):
            return DockerExit(-signal.SIGKILL, oom_killed=True, memory=handle.memory)
        if code > 128 and (code - 128) in {s.value for s in signal.Signals}:
            return DockerExit(128 - code)
        return DockerExit(code)

    def _timed(self, handle: StepContainer, exit: Exit) -> Exit:
        if not handle.timed_out:
            return exit
        return DockerExit(exit.code, timed_out_after=handle.timeout)

    def _kill_container(self, handle: StepContainer) -> None:
        if handle.id is None:
            return
        with contextlib.suppress(self.engine.sdk.errors.APIError):
            self.engine.api.kill(handle.id)

    def _close_stream(self, handle: StepContainer | Spare) -> None:
        if handle.stream is not None:
            with contextlib.suppress(OSError):
                raw(handle.stream).close()
            with contextlib.suppress(OSError):
                handle.stream.close()

    def _remove_in_background(self) -> None:
        engine = Engine(self.engine.client(), self.engine.sdk)
        while True:
            container = self.removals.get()
            if container is None:
                engine.close()
                return
            with contextlib.suppress(Exception):  # close() sweeps by label anyway
                engine.remove(container)


def _labels(run_id: str, step_id: str, iteration: str, attempt: int) -> dict[str, str]:
    """The labels that say which run, step, iteration and attempt a container is for."""
    return {
        LABEL_RUN: run_id,
        LABEL_STEP: step_id,
        LABEL_ITERATION: iteration,
        LABEL_ATTEMPT: str(attempt),
    }


def _request(launch: Launch, python: str, workdir: str) -> bytes:
    """The launcher's request line: the whole command, the step's environment, the directory."""
    command = [python, *module_args(), *launch.argv]
    # The container sees exactly the GPUs it was given (`DeviceRequests`), numbered from 0: the
    # machine's numbering in CUDA_VISIBLE_DEVICES would point past them.
    env = {k: v for k, v in launch.env.items() if k != CUDA_VISIBLE_DEVICES}
    request = {"argv": command, "env": env, "cwd": workdir}
    return json.dumps(request).encode() + b"\n"


def _bind(source: str, read_only: bool, target: str | None = None) -> dict[str, Any]:
    return {"Type": "bind", "Source": source, "Target": target or source, "ReadOnly": read_only}


def _append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as log:
        log.write(text)
