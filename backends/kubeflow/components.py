"""Step components and container executors of a KFP PipelineSpec, shared between identical steps.

Every step runs the shared step runtime (`python -m pipec.backends.runtime`), with KFP placeholders
where the runtime expects input values, input artifact directories and output destinations. How a
value travels through KFP decides how the runtime reads it:

* `str` values are KFP `STRING` parameters holding the raw text (what users type in the KFP UI and
  what CEL conditions compare), read with `text:` and written with `--output-text`;
* int, float, bool, list and dict values are the matching KFP parameter types, which KFP renders as
  JSON, read with `value:` and written with `--output-value`;
* values of type `any`, `none` or `optional[...]` have no KFP type: they are `STRING` parameters
  holding canonical JSON text, read with `value:`;
* artifacts are KFP artifacts of a system type; the runtime writes its output directory (data +
  `meta.json`) at the artifact's local path and reads an input artifact's directory back;
* a `collect` of artifacts is a KFP artifact list (`isArtifactList`, KFP's `dsl.Collected` of an
  artifact), read with `kfp-artifacts:NAME`. KFP has no placeholder for the paths of a list, so a
  step with such an input also gets the whole executor input (`--kfp-executor-input {{$}}`,
  which every KFP engine renders) to read the lists from;
* a step with artifact outputs lists them in KFP's executor output file
  (`--kfp-executor-output`, `--kfp-output-uri` per output), as KFP's own components do: kfp.local
  finds a task's artifact outputs only there.

A component (input/output definitions) and an executor (the container) are keyed by their content,
so a thousand calls of one function with the same options share one of each, where KFP's own
compiler repeats both per task.

Every step gets the step context (`pipec.context()`) on its command line as `--context`, filled
by KFP's own placeholders: the run id is `{{$.pipeline_job_uuid}}` (the run's id on Kubeflow, the
job's on Vertex, a fresh id per run in kfp.local); the step id is the task's constant input
`pipec-step` (`STEP_INPUT`), so that steps of one function still share their component and
executor (KFP's `{{$.pipeline_task_name}}` is the task's DNS-label name, not the step id).
KFP renders no iteration index and no attempt number anywhere. A `foreach` therefore iterates
over entries that carry their index (dag.py, runtime/loop_entries.py), and a step inside loops
gets each enclosing loop's index as a task input (`ITERATION_INPUT`, outermost first), joined
with dots into the context's iteration, as on every other target; outside a `foreach` the
iteration is `()`. The attempt is 1 for a step KFP never retries and left out (None) for one it
may retry (KFP re-runs the same command). A step whose function
calls `log_metric` also gets a `system.Metrics` output (`METRICS_OUTPUT`, see `metrics`).

The executor's command carries the step's code hash as an interpreter option
(`python -X pipec-code-hash=sha256:... -m pipec.backends.runtime`): KFP and Vertex fingerprint a
cached task by its image, command and arguments, so an edited step is never served the result of
its older self, even from an image whose tag was reused. CPython keeps an unknown `-X` option in
`sys._xoptions` and otherwise ignores it, so the runtime's own command line stays as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from pipec.backends.common import k8s
from pipec.backends.runtime.invocation import (
    Invocation,
    SourceKind,
    module_args,
    source,
)
from pipec.ir import types
from pipec.ir.model import Component, Port, Step

JSON = dict[str, Any]

# Where a value output's directory goes inside the container: the value itself leaves the step
# as a KFP output parameter, so its directory is scratch space.
SCRATCH = "/tmp/pipec-outputs"

# KFP's placeholder for the whole executor input as JSON (inputs with their artifact lists,
# outputs), rendered by KFP's launcher, Vertex and kfp.local alike.
EXECUTOR_INPUT = "{{$}}"
# Where KFP wants the executor output file (the artifacts a step wrote, and their metadata).
EXECUTOR_OUTPUT = "{{$.outputs.output_file}}"
# KFP's id of the run (Kubeflow's run id, Vertex's job id, kfp.local's id of the run).
RUN_ID = "{{$.pipeline_job_uuid}}"
# The task input holding the step id (a constant): a name no Python parameter can have.
STEP_INPUT = "pipec-step"
# The task inputs holding the indexes of the loops around a step (text), outermost first.
ITERATION_INPUT = "pipec-iteration-{}"
# The module that writes a loop's entries at run time, and its input (runtime/loop_entries.py).
ENTRIES_MODULE = "pipec.backends.runtime.loop_entries"
ENTRIES_ITEMS = "items"
# The `system.Metrics` output of a step that logs metrics (a name no step output can have).
METRICS_OUTPUT = "pipec-metrics"
METRICS_TYPE = {"schemaTitle": "system.Metrics", "schemaVersion": "0.0.1"}

_PARAMETER_TYPES = {
    "int": "NUMBER_INTEGER",
    "float": "NUMBER_DOUBLE",
    "bool": "BOOLEAN",
    "str": "STRING",
    "list": "LIST",
    "dict": "STRUCT",
}

# Artifact classes KFP's UI and metadata know by a more specific system type.
_DATASETS = ("pandas.DataFrame", "numpy.ndarray", "pyarrow.Table", "polars.DataFrame")
_MODEL_MODULES = ("sklearn.", "torch.", "tensorflow.", "keras.", "xgboost.", "lightgbm.")


def parameter_type(type_text: str) -> str:
    """The KFP parameter type that carries a pipec value type."""
    return _PARAMETER_TYPES.get(types.parse(type_text).name, "STRING")


def is_artifact_list(type_text: str) -> bool:
    """Whether a value of this type is a list of artifacts (a `collect` of an artifact output),
    which KFP carries as an artifact list."""
    item = types.item_type(type_text)
    return item is not None and item != "any" and types.is_artifact(item)


def travels_as_artifact(type_text: str) -> bool:
    """Whether KFP carries a value of this type as an artifact (or a list of them), not as a
    parameter."""
    return types.is_artifact(type_text) or is_artifact_list(type_text)


def source_kind(type_text: str) -> SourceKind:
    """How the runtime reads a value of this type from its KFP rendering."""
    if types.is_artifact(type_text):
        return SourceKind.ARTIFACT
    if is_artifact_list(type_text):
        return SourceKind.KFP_ARTIFACTS
    return SourceKind.TEXT if types.parse(type_text).name == "str" else SourceKind.VALUE


def carried_as_json_text(type_text: str) -> bool:
    """Whether a value of this type travels as a STRING parameter holding JSON text."""
    return (
        not types.is_artifact(type_text)
        and parameter_type(type_text) == "STRING"
        and types.parse(type_text).name != "str"
    )


def artifact_type(type_text: str) -> JSON:
    """The KFP system artifact type for an `artifact[...]` type (or a list of them)."""
    item = types.item_type(type_text) if is_artifact_list(type_text) else type_text
    name = types.parse(item or type_text).artifact or ""
    if name in _DATASETS:
        title = "system.Dataset"
    elif name.startswith(_MODEL_MODULES):
        title = "system.Model"
    else:
        title = "system.Artifact"
    return {"schemaTitle": title, "schemaVersion": "0.0.1"}


def artifact_definition(type_text: str) -> JSON:
    """How an input or output of this artifact type (or list of them) is declared."""
    definition: JSON = {"artifactType": artifact_type(type_text)}
    if is_artifact_list(type_text):
        definition["isArtifactList"] = True
    return definition


def kfp_value(value: Any, type_text: str) -> Any:
    """A pipec value as KFP holds it (JSON text for the types KFP has no parameter type for)."""
    return json.dumps(value, sort_keys=True) if carried_as_json_text(type_text) else value


@dataclass(frozen=True)
class InputUse:
    """One bound input of a step as its executor sees it: the type of what is passed in."""

    name: str
    type: str


def input_definitions(uses: list[InputUse], loops: int = 0) -> JSON:
    """`inputDefinitions` of a component (with the step id, `STEP_INPUT`, and the indexes of
    the `loops` enclosing loops)."""
    parameters: JSON = {STEP_INPUT: {"parameterType": "STRING"}}
    for name in iteration_inputs(loops):
        parameters[name] = {"parameterType": "STRING"}
    artifacts: JSON = {}
    for use in uses:
        if travels_as_artifact(use.type):
            artifacts[use.name] = artifact_definition(use.type)
        else:
            parameters[use.name] = {"parameterType": parameter_type(use.type)}
    return _definitions(parameters, artifacts)


def output_definitions(outputs: tuple[Port, ...], metrics: bool = False) -> JSON:
    """`outputDefinitions` of a component (`metrics`: with the `system.Metrics` output)."""
    parameters: JSON = {}
    artifacts: JSON = {}
    if metrics:
        artifacts[METRICS_OUTPUT] = {"artifactType": METRICS_TYPE}
    for port in outputs:
        if types.is_artifact(port.type):
            artifacts[port.name] = {"artifactType": artifact_type(port.type)}
        else:
            parameters[port.name] = {"parameterType": parameter_type(port.type)}
    return _definitions(parameters, artifacts)


def _definitions(parameters: JSON, artifacts: JSON) -> JSON:
    found: JSON = {}
    if parameters:
        found["parameters"] = parameters
    if artifacts:
        found["artifacts"] = artifacts
    return found


def context_values(pipeline: str, loops: int, engine_retries: bool) -> dict[str, str]:
    """The step context as KFP can give it (see the module docstring): `loops`, how many
    `foreach` loops enclose the step (their indexes are the inputs `iteration_inputs`);
    `engine_retries`, whether KFP may run it more than once."""
    found = {
        "run_id": RUN_ID,
        "pipeline": pipeline,
        "step": f"{{{{$.inputs.parameters['{STEP_INPUT}']}}}}",
        "iteration": ".".join(
            f"{{{{$.inputs.parameters['{name}']}}}}" for name in iteration_inputs(loops)
        ),
    }
    if not engine_retries:
        found["attempt"] = "1"
    return found


def iteration_inputs(loops: int) -> list[str]:
    """The names of the task inputs holding the indexes of `loops` enclosing loops."""
    return [ITERATION_INPUT.format(depth) for depth in range(loops)]


def runtime_invocation(
    component: Component,
    uses: list[InputUse],
    code_root: str,
    output_types: dict[str, str],
    context: dict[str, str] | None = None,
    metrics: bool = False,
) -> Invocation[str]:
    """The step runtime's invocation with KFP placeholders (see the runtime contract);
    `context`: `context_values`; `metrics`: the step has the `system.Metrics` output."""
    inputs: dict[str, str] = {}
    for use in uses:
        kind = source_kind(use.type)
        if kind is SourceKind.ARTIFACT:
            placeholder = f"{{{{$.inputs.artifacts['{use.name}'].path}}}}"
        elif kind is SourceKind.KFP_ARTIFACTS:
            placeholder = use.name
        else:
            placeholder = f"{{{{$.inputs.parameters['{use.name}']}}}}"
        inputs[use.name] = source(kind, placeholder)
    outputs: dict[str, str] = {}
    values: dict[str, str] = {}
    texts: dict[str, str] = {}
    uris: dict[str, str] = {}
    for name, type_text in output_types.items():
        if types.is_artifact(type_text):
            outputs[name] = f"{{{{$.outputs.artifacts['{name}'].path}}}}"
            uris[name] = f"{{{{$.outputs.artifacts['{name}'].uri}}}}"
            continue
        # The value leaves the step as a KFP output parameter; its directory is scratch space.
        outputs[name] = f"{SCRATCH}/{name}"
        carried = texts if types.parse(type_text).name == "str" else values
        carried[name] = f"{{{{$.outputs.parameters['{name}'].output_file}}}}"
    invocation: Invocation[str] = Invocation.of(component, code_root, inputs, outputs)
    invocation = replace(invocation, output_values=values, output_texts=texts)
    if metrics or any(is_artifact_list(use.type) for use in uses):
        # KFP renders the artifacts of a list only inside the whole executor input; and the
        # executor output file a Metrics artifact's metadata goes in is named only there for
        # every engine (KFP's launcher does not render EXECUTOR_OUTPUT).
        invocation = invocation.with_kfp_executor_input(EXECUTOR_INPUT)
    if metrics:
        invocation = invocation.with_kfp_metrics(METRICS_OUTPUT)
    if context:
        invocation = invocation.with_context(context)
    if uris:
        # kfp.local learns a task's artifact outputs only from its executor output file.
        invocation = invocation.with_kfp_executor_output(EXECUTOR_OUTPUT, uris)
    return invocation


CODE_HASH_OPTION = "pipec-code-hash"
"""The `-X` option that puts a step's code hash into what KFP's cache keys on."""


def runtime_command(python: str, code_hash: str) -> list[str]:
    """The executor's command: the interpreter, the code hash as an `-X` option, the runtime."""
    return [python, "-X", f"{CODE_HASH_OPTION}={code_hash}", *module_args()]


def container(
    step: Step,
    component: Component,
    uses: list[InputUse],
    image: str,
    code_root: str,
    python: str,
    timeout: float | None = None,
    target_env: dict[str, str] | None = None,
    secret_manager: str | None = None,
    context: dict[str, str] | None = None,
    metrics: bool = False,
) -> JSON:
    """The container executor of one step (without resources; the target adds those);
    `timeout`: the one the step runtime keeps itself (`--timeout`); `target_env`: variables the
    target sets besides the step's own `env` (the target's value wins: it states a fact about the
    pod, such as where the scratch volume is mounted); `secret_manager`: the project whose Secret
    Manager the step runtime reads the step's secrets from (`--secret-manager`); `context` and
    `metrics`: see `runtime_invocation`."""
    outputs = {port.name: port.type for port in component.outputs}
    invocation = runtime_invocation(component, uses, code_root, outputs, context, metrics)
    invocation = invocation.with_attempts(timeout)
    if secret_manager is not None:
        invocation = invocation.with_secret_manager(secret_manager, step.secrets)
    spec: JSON = {
        "image": image,
        "command": runtime_command(python, component.code_hash),
        "args": invocation.argv(),
    }
    env = {**step.env, **(target_env or {})}
    if env:
        spec["env"] = [{"name": k, "value": k8s.env_value(v)} for k, v in sorted(env.items())]
    return spec
