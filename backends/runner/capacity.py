"""What the machine can give steps at once: parallelism, CPUs, memory and GPUs.

A step's `resources.cpu`, `resources.memory` and `resources.gpu` are reserved while it runs; a
step without them reserves nothing but a parallelism slot. A step that does not fit now waits
for running steps to give their share back (it never overcommits the machine). A request larger
than the whole machine is clamped to it, so such a step runs alone instead of never, and
`oversized` says so in a warning before the run starts.

GPUs are devices, not a number: each running GPU step is given specific devices, which no other
running step has, named in its `CUDA_VISIBLE_DEVICES` (`Capacity.take`). The devices are the
`gpus` setting's count (indexes 0..n-1), else those an inherited `CUDA_VISIBLE_DEVICES` names,
else those `nvidia-smi -L` lists; none when neither is there.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field

from pipec.ir import quantity
from pipec.ir.diagnostics import Diagnostic
from pipec.ir.model import Resources

Request = tuple[float, int, int]
"""(cpus, memory bytes, GPUs) a step reserves."""

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"

OVERSIZED = "W006"
"""The warning code of a step that asks for more than the machine has."""


def machine_memory() -> int:
    """Physical memory in bytes (0 when unknown: memory is then not checked)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def machine_cpus() -> int:
    """CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_gpus() -> tuple[str, ...]:
    """The GPU devices steps may be given (see the module docstring)."""
    inherited = os.environ.get(CUDA_VISIBLE_DEVICES)
    if inherited is not None:
        # As CUDA reads it: the list ends at the first empty or negative entry ("-1" hides all).
        entries = (entry.strip() for entry in inherited.split(","))
        return tuple(itertools.takewhile(lambda e: bool(e) and not e.startswith("-"), entries))
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return ()
    try:
        listed = subprocess.run(
            [tool, "-L"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()  # a driver that does not answer: no GPU can be used either
    # One line per GPU, "GPU <index>: <name> (UUID: ...)"; MIG devices are indented below it.
    count = sum(1 for line in listed.splitlines() if line.startswith("GPU "))
    return tuple(str(index) for index in range(count))


@dataclass
class Capacity:
    """Limits and current use."""

    parallelism: int
    cpus: float
    memory: int
    gpu_devices: tuple[str, ...] = ()
    """The GPUs steps may be given, by the name `CUDA_VISIBLE_DEVICES` takes."""
    used_cpus: float = 0.0
    used_memory: int = 0
    free_gpus: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.free_gpus = list(self.gpu_devices)

    @classmethod
    def of_machine(
        cls,
        parallelism: int | None,
        cpus: float | None,
        memory: str | None,
        gpus: int | None = None,
    ) -> Capacity:
        """This machine's capacity, with the settings' overrides."""
        return cls(
            parallelism=parallelism or machine_cpus(),
            cpus=float(cpus) if cpus else float(machine_cpus()),
            memory=quantity.to_bytes(memory) if memory else machine_memory(),
            gpu_devices=machine_gpus() if gpus is None else tuple(str(i) for i in range(gpus)),
        )

    def fits(self, request: Request, running: int) -> bool:
        """Whether a step with `request` may start now, with `running` steps running."""
        if running == 0:
            return True  # everything is free, and the request is clamped to the machine
        if running >= self.parallelism:
            return False
        cpu, memory, gpus = request
        if self.used_cpus + cpu > self.cpus + 1e-9:
            return False
        if gpus > len(self.free_gpus):
            return False
        return not (self.memory and self.used_memory + memory > self.memory)

    def take(self, request: Request) -> tuple[str, ...]:
        """Reserve a starting step's request; return the GPU devices it is given."""
        self.used_cpus += request[0]
        self.used_memory += request[1]
        given = tuple(self.free_gpus[: request[2]])
        del self.free_gpus[: request[2]]
        return given

    def release(self, request: Request, gpus: Iterable[str] = ()) -> None:
        """Give back a finished step's request and its GPU devices."""
        self.used_cpus -= request[0]
        self.used_memory -= request[1]
        # Back in the machine's order, so the next step is given the lowest free indexes.
        returned = set(self.free_gpus) | set(gpus)
        self.free_gpus = [d for d in self.gpu_devices if d in returned]

    def gpu_env(self, given: tuple[str, ...]) -> dict[str, str]:
        """The step's `CUDA_VISIBLE_DEVICES`: its own devices; on a machine with GPUs, an empty
        list for a step that asked for none (so that it cannot use another step's GPU)."""
        if not self.gpu_devices:
            return {}  # no GPU known here: leave the variable as the user set it
        return {CUDA_VISIBLE_DEVICES: ",".join(given)}


def request_of(resources: Resources, capacity: Capacity) -> Request:
    """A step's (cpus, memory bytes, GPUs), clamped to the machine."""
    cpu = min(float(resources.cpu or 0.0), capacity.cpus)
    memory = quantity.to_bytes(resources.memory) if resources.memory else 0
    if capacity.memory:
        memory = min(memory, capacity.memory)
    gpus = min(resources.gpu or 0, len(capacity.gpu_devices))
    return (cpu, memory, gpus)


def oversized(steps: Iterable[tuple[str, Resources]], capacity: Capacity) -> list[Diagnostic]:
    """One warning per step asking for more CPUs, memory or GPUs than the machine has, saying
    what it gets instead."""
    found = []
    gpus = len(capacity.gpu_devices)
    for name, r in steps:
        over, gets = [], []
        if r.cpu and r.cpu > capacity.cpus + 1e-9:
            over.append(f"{r.cpu:g} CPUs (this machine has {capacity.cpus:g})")
            gets.append("all CPUs")
        if r.memory and capacity.memory and quantity.to_bytes(r.memory) > capacity.memory:
            over.append(f"{r.memory} of memory (this machine has {_gib(capacity.memory)})")
            gets.append("all the memory")
        if r.gpu and r.gpu > gpus:
            over.append(f"{r.gpu} GPUs (this machine has {gpus or 'none'})")
            gets.append(f"all {gpus} GPUs" if gpus else "no GPU")
        if over:
            # A share of the machine it asked too much of comes only when nothing else holds it.
            waits = ", waiting until no other step holds them" if gets != ["no GPU"] else ""
            found.append(
                Diagnostic(
                    code=OVERSIZED,
                    severity="warning",
                    message=f"step {name!r} asks for {' and '.join(over)}; it runs with "
                    f"{' and '.join(gets)}{waits}",
                    hint="lower its resources, or set cpus / memory / gpus in "
                    "[tool.pipec.targets.local] if this machine has more than pipec sees",
                )
            )
    return found


def _gib(amount: int) -> str:
    return f"{amount / 2**30:.1f}Gi"
