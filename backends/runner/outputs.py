"""The outputs of a finished step instance: read from the artifact store, recorded, and what of
them the runner keeps in memory.

When an attempt succeeds, the runner reads each declared output's `meta.json` and, for a JSON
value up to `MAX_RECORDED_VALUE`, its text (never more: a bigger value stays in the store only).
The metadata store records the values; the runner itself keeps only those a condition or a loop
of the plan reads (`read_by_scopes`), and reads any other value back from the store on the rare
occasion it needs one, so a run of thousands of steps does not hold every value it produced.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping

from pipec.backends.runner.plan import Plan, PlanCondition, PlanLoop
from pipec.backends.runner.records import MAX_RECORDED_VALUE, ArtifactRecord, artifact_from_meta
from pipec.backends.runtime import store
from pipec.ir import graph
from pipec.ir.model import Binding, Collect, OutputRef

VALUE_FILE = "value.json"
"""Where the json materializer keeps a value (see `runtime.materializers`)."""


def read_by_scopes(plan: Plan) -> frozenset[tuple[str, str]]:
    """(step id, output) of every output a condition's test or a loop's items read."""
    bindings: list[Binding] = []
    for node in plan.nodes.values():
        if isinstance(node, PlanCondition):
            bindings.extend(graph.expr_operands(node.test))
        elif isinstance(node, PlanLoop):
            bindings.append(node.items)
    return frozenset((b.step, b.output) for b in bindings if isinstance(b, OutputRef | Collect))


def collect(
    artifact_root: str,
    run_id: str,
    step_id: str,
    iteration: Iterable[int],
    outputs: Iterable[str],
) -> dict[str, ArtifactRecord] | str:
    """The artifact records of a step instance's declared outputs, or why one is missing."""
    found: dict[str, ArtifactRecord] = {}
    for output in outputs:
        uri = store.output_uri(artifact_root, run_id, step_id, list(iteration), output)
        meta = store.read_meta(uri)
        if meta is None:
            return f"output {output!r} was not written to {uri}"
        value_json = _value_text(uri) if meta.get("materializer") == "json" else None
        found[output] = artifact_from_meta(output, uri, meta, value_json)
    return found


def kept_in_memory(
    step_id: str, artifacts: Mapping[str, ArtifactRecord], needed: frozenset[tuple[str, str]]
) -> dict[str, ArtifactRecord]:
    """The artifacts as the runner holds them: values only where a condition or loop reads them."""
    return {
        name: artifact if (step_id, name) in needed else artifact.without_value()
        for name, artifact in artifacts.items()
    }


def _value_text(uri: str) -> str | None:
    """The JSON text of a value output when it is small enough to record, else None (read no
    more than that from the store)."""
    if not store.is_remote(uri):
        path = store.local_path(uri) / VALUE_FILE
        try:
            if path.stat().st_size > MAX_RECORDED_VALUE:
                return None
            return path.read_text(encoding="utf-8")
        except OSError:  # not there: the value is read (and the problem said) where it is used
            return None
    fsspec = importlib.import_module("fsspec")
    with fsspec.open(f"{uri.rstrip('/')}/{VALUE_FILE}", "rb") as handle:
        data: bytes = handle.read(MAX_RECORDED_VALUE + 1)
    return None if len(data) > MAX_RECORDED_VALUE else data.decode("utf-8")
