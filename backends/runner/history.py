"""The lineage of outputs in a project's run history.

Lineage comes from the store's two lineage tables: `artifacts` (which step instance recorded an
output at a location: the one that wrote it, and those that reused it from the cache) and
`consumers` (which step instances read it). Upstream of an output is the step that wrote it and,
through that step's inputs, what it read; downstream is who read it and what they wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipec.backends.runner.metadata import MetadataStore
from pipec.backends.runner.records import StepRecord, parse_iteration
from pipec.backends.runner.results import RunError, label_of
from pipec.backends.runtime import store

LINEAGE_DEPTH = 50
"""How many producer/consumer hops a lineage walk follows at most (pipelines are DAGs, so this
only bounds the output of very long chains)."""


# ------------------------------------------------------------------------------------ lineage


@dataclass(frozen=True)
class Use:
    """A step instance that wrote or read an output."""

    run_id: str
    step_id: str
    iteration: str
    name: str
    """The output's name (for a producer) or the input's (for a consumer)."""
    status: str
    cached_from: str | None = None

    @property
    def label(self) -> str:
        """`run_id step[i]`."""
        return f"{self.run_id} {label_of(self.step_id, parse_iteration(self.iteration))}"


@dataclass
class Lineage:
    """Where one output came from and where it went."""

    uri: str
    produced_by: Use | None
    reused_by: list[Use] = field(default_factory=list)
    read_by: list[Use] = field(default_factory=list)
    upstream: list[Lineage] = field(default_factory=list)
    """The lineage of each input of the step that wrote it."""
    downstream: list[Lineage] = field(default_factory=list)
    """The lineage of each output of the steps that read it."""


def _use(record: StepRecord, name: str) -> Use:
    return Use(
        record.run_id, record.step_id, record.iteration, name, record.status, record.cached_from
    )


def lineage(
    metadata: MetadataStore, uri: str, *, up: bool = True, down: bool = True, depth: int = 0,
    seen: set[str] | None = None,
) -> Lineage:
    """The lineage of the output at `uri`, followed upstream and downstream (each location
    once)."""
    seen = set() if seen is None else seen
    seen.add(uri)
    producers = metadata.producers_of(uri)
    writer = next((p for p in producers if p[0].status == "succeeded"), None)
    if writer is None and producers:
        writer = producers[0]
    found = Lineage(
        uri=uri,
        produced_by=_use(*writer) if writer else None,
        reused_by=[_use(r, n) for r, n in producers if writer is None or r is not writer[0]],
        read_by=[_use(r, n) for r, n in metadata.consumers_of(uri)],
    )
    if depth >= LINEAGE_DEPTH:
        return found
    if up and writer is not None:
        step = _with_inputs(metadata, writer[0])
        for uris in step.inputs.values():
            for source in uris:
                if source not in seen:
                    found.upstream.append(
                        lineage(metadata, source, up=True, down=False, depth=depth + 1, seen=seen)
                    )
    if down:
        for reader, _ in metadata.consumers_of(uri):
            for artifact in _with_inputs(metadata, reader).artifacts.values():
                if artifact.uri not in seen:
                    found.downstream.append(
                        lineage(
                            metadata, artifact.uri, up=False, down=True, depth=depth + 1,
                            seen=seen,
                        )
                    )
    return found


def _with_inputs(metadata: MetadataStore, record: StepRecord) -> StepRecord:
    """The record with its artifacts and inputs (the lineage queries return bare rows)."""
    for full in metadata.steps_of(record.run_id):
        if full.step_id == record.step_id and full.iteration == record.iteration:
            return full
    return record


def resolve_output(metadata: MetadataStore, text: str) -> str:
    """The location an ARTIFACT argument names: a stored location (path or URL) as `runs show`
    and `artifacts` print it, or `RUN_ID/STEP[/i...]/OUTPUT` under that run's artifact root."""
    head, _, rest = text.partition("/")
    run = metadata.get_run(head) if rest else None
    if run is not None:
        *middle, output = rest.split("/")
        if middle:
            step_id, *indices = middle
            if all(i.isdigit() for i in indices):
                return store.output_uri(
                    run.artifact_root, run.run_id, step_id, [int(i) for i in indices], output
                )
    candidates = [text]
    if not store.is_remote(text):
        candidates.append(str(Path(text).resolve()))
    for candidate in candidates:
        if metadata.producers_of(candidate) or metadata.consumers_of(candidate):
            return candidate
    raise RunError(
        f"no run and no recorded output {text!r}: give a run id, an output's location as "
        "`pipec runs show` prints it, or RUN_ID/STEP/OUTPUT (RUN_ID/STEP/i/OUTPUT in a loop)"
    )
