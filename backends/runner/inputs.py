"""What a binding reads for one step instance, as a value or as runtime arguments.

`read` is the one dispatch on the kinds of binding: a constant, a parameter or a loop item is a
JSON value; an output is one artifact of the producing instance, a `collect` the list of them
over the loop's iterations. From that, `value_of` gives the JSON value (for conditions, loop items
and value inputs) and `resolve` gives a step's runtime SOURCEs together with what its cache key
and lineage record; `runtime_args` fills the plan's placeholders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, assert_never

from pipec.backends.runner.expansion import Expansion, ExpansionError, Instance, Key
from pipec.backends.runner.plan import PlanStep, render
from pipec.backends.runner.records import ArtifactRecord
from pipec.backends.runtime import store
from pipec.backends.runtime.cache_key import digest
from pipec.backends.runtime.invocation import SourceKind, source
from pipec.ir.model import Binding, Collect, Const, LoopItem, OutputRef, ParamRef


@dataclass(frozen=True)
class Value:
    """A JSON value: a constant, a parameter, a loop item."""

    value: Any


@dataclass(frozen=True)
class Outputs:
    """Step outputs: one (`output`), or the list over a loop's iterations (`collect`)."""

    artifacts: tuple[ArtifactRecord, ...]
    gathered: bool


@dataclass
class Resolved:
    """A step instance's inputs: runtime SOURCE, and for the cache key a value digest or a
    content hash, and for lineage the artifact URIs read, per input name."""

    sources: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    lineage: dict[str, list[str]] = field(default_factory=dict)


class Inputs:
    """Reads bindings for the step instances of one run."""

    def __init__(
        self,
        expansion: Expansion,
        params: Mapping[str, Any],
        outputs: Mapping[Key, Mapping[str, ArtifactRecord]],
    ) -> None:
        self.expansion = expansion
        self.params = params
        self.outputs = outputs

    def read(self, binding: Binding, instance: Instance) -> Value | Outputs:
        """What `binding` reads for `instance` (KeyError when a producer has no such output)."""
        match binding:
            case Const():
                return Value(binding.value)
            case ParamRef():
                return Value(self.params[binding.param])
            case LoopItem():
                return Value(self.expansion.loop_item(binding.loop, instance))
            case OutputRef():
                key = self.expansion.producer_key(binding.step, instance)
                return Outputs((self.outputs[key][binding.output],), gathered=False)
            case Collect():
                keys = self.expansion.collect_keys(binding, instance)
                found = tuple(self.outputs[k][binding.output] for k in keys)
                return Outputs(found, gathered=True)
            case _:
                assert_never(binding)

    def value_of(self, binding: Binding, instance: Instance) -> Any:
        """The JSON value of `binding` for `instance` (outputs read back from the store)."""
        read = self.read(binding, instance)
        match read:
            case Value():
                return read.value
            case Outputs(gathered=True):
                return [_artifact_value(a) for a in read.artifacts]
            case Outputs():
                return _artifact_value(read.artifacts[0])
            case _:
                assert_never(read)

    def resolve(self, step: PlanStep, instance: Instance) -> Resolved:
        """Every input of a ready step instance."""
        resolved = Resolved()
        for name, binding in step.inputs.items():
            read = self.read(binding, instance)
            match read:
                case Value():
                    resolved.params[name] = read.value
                    text = json.dumps(read.value, sort_keys=True)
                    resolved.sources[name] = source(SourceKind.VALUE, text)
                case Outputs(gathered=True):
                    uris = [a.uri for a in read.artifacts]
                    resolved.sources[name] = source(SourceKind.ARTIFACTS, json.dumps(uris))
                    resolved.hashes[name] = digest([a.hash for a in read.artifacts])
                    resolved.lineage[name] = uris
                case Outputs():
                    artifact = read.artifacts[0]
                    resolved.sources[name] = source(SourceKind.ARTIFACT, artifact.uri)
                    resolved.hashes[name] = artifact.hash
                    resolved.lineage[name] = [artifact.uri]
                case _:
                    assert_never(read)
        return resolved


def runtime_args(
    step: PlanStep,
    instance: Instance,
    sources: Mapping[str, str],
    places: Mapping[str, str],
) -> list[str]:
    """The step's runtime arguments with every placeholder filled: `places` gives
    project_root, artifact_root and run_id; the instance its iteration; `sources` its inputs."""
    filled = {**places, "iteration": "".join(f"/{i}" for i in instance.ctx)}

    def lookup(name: str) -> str:
        if name.startswith("input:"):
            return sources[name.removeprefix("input:")]
        return filled[name]

    return [render(arg, lookup) for arg in step.runtime_args]


def _artifact_value(artifact: ArtifactRecord) -> Any:
    if artifact.is_value:
        return artifact.value()
    found, value = store.read_value(artifact.uri)
    if not found:
        raise ExpansionError(f"{artifact.uri} holds a {artifact.type}, not a JSON value")
    return value
