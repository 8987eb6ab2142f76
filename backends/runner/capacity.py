"""What the machine can give steps at once: parallelism, CPUs and memory.

A step's `resources.cpu` and `resources.memory` are reserved while it runs; a step without them
reserves nothing but a parallelism slot. A request larger than the whole machine is clamped to
it, so such a step runs alone instead of never.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pipec.ir import quantity
from pipec.ir.model import Resources

Request = tuple[float, int]
"""(cpus, memory bytes) a step reserves."""


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


@dataclass
class Capacity:
    """Limits and current use."""

    parallelism: int
    cpus: float
    memory: int
    used_cpus: float = 0.0
    used_memory: int = 0

    @classmethod
    def of_machine(
        cls, parallelism: int | None, cpus: float | None, memory: str | None
    ) -> Capacity:
        """This machine's capacity, with the settings' overrides."""
        return cls(
            parallelism=parallelism or machine_cpus(),
            cpus=float(cpus) if cpus else float(machine_cpus()),
            memory=quantity.to_bytes(memory) if memory else machine_memory(),
        )

    def fits(self, request: Request, running: int) -> bool:
        """Whether a step with `request` may start now, with `running` steps running."""
        if running == 0:
            return True
        if running >= self.parallelism:
            return False
        cpu, memory = request
        if self.used_cpus + cpu > self.cpus + 1e-9:
            return False
        return not (self.memory and self.used_memory + memory > self.memory)

    def take(self, request: Request) -> None:
        """Reserve a started step's request."""
        self.used_cpus += request[0]
        self.used_memory += request[1]

    def release(self, request: Request) -> None:
        """Give back a finished step's request."""
        self.used_cpus -= request[0]
        self.used_memory -= request[1]


def request_of(resources: Resources, capacity: Capacity) -> Request:
    """A step's (cpus, memory bytes), clamped to the machine."""
    cpu = min(float(resources.cpu or 0.0), capacity.cpus)
    memory = quantity.to_bytes(resources.memory) if resources.memory else 0
    if capacity.memory:
        memory = min(memory, capacity.memory)
    return (cpu, memory)
