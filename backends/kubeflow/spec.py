"""Assemble a whole KFP PipelineSpec: root inputs, DAGs, shared components and executors, and the
kfp-kubernetes platform config.

The target (kubeflow or vertex) supplies the parts where engines differ through `TargetHooks`:
the resources of a container, the environment it adds, and the per-executor platform config.
Everything here is plain dicts; the backend turns them into YAML/JSON with sorted keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipec.backends.kubeflow import components as kx
from pipec.backends.kubeflow import dag as kd
from pipec.backends.kubeflow.channels import Source
from pipec.ir import graph, names
from pipec.ir.diagnostics import Diagnostic, DiagnosticError
from pipec.ir.model import Loop, Pipeline, Step

JSON = dict[str, Any]
SCHEMA_VERSION = "2.1.0"
SDK_VERSION = "pipec-0.1.0"


class TargetHooks(Protocol):
    """What a KFP-family target decides for itself."""

    target: str
    """The target's name (for diagnostics)."""

    def image(self, step: Step) -> str:
        """The image a step runs in."""

    def resources(self, step: Step) -> JSON | None:
        """`resources` of the step's container, or None."""

    def platform(self, step: Step) -> JSON | None:
        """The kfp-kubernetes executor config of the step, or None."""

    def env(self, step: Step) -> dict[str, str]:
        """Environment variables the target gives the step besides its own `env` (e.g. where
        its scratch volume is mounted)."""

    def runtime_timeout(self, step: Step) -> float | None:
        """The timeout the step runtime keeps itself (`--timeout`): where the engine has no
        form for the step's timeout; None where the engine keeps it."""

    def runtime_secrets(self, step: Step) -> str | None:
        """The Google Cloud project whose Secret Manager the step runtime reads the step's
        secrets from (`--secret-manager`), where the engine cannot hand them over; else None."""

    def check(self, step: Step) -> list[Diagnostic]:
        """What this target cannot express about the step (U001, each naming the option
        `unsupported=warn` may drop); the target's `check` reports them before anything is
        built."""


@dataclass
class Assembly:
    """The result: the PipelineSpec and (when any executor needs one) the platform spec."""

    pipeline_spec: JSON
    platform_spec: JSON | None
    executors: dict[str, JSON] = field(default_factory=dict)


class SpecAssembler:
    """Builds one PipelineSpec; components and executors are shared by content."""

    def __init__(
        self,
        pipeline: Pipeline,
        hooks: TargetHooks,
        code_root: str,
        python: str,
        metric_components: frozenset[str] = frozenset(),
    ) -> None:
        """`metric_components`: ids of the components that get a `system.Metrics` output
        (`metrics.logs_metrics`)."""
        self.pipeline = pipeline
        self.metric_components = metric_components
        self.hooks = hooks
        self.code_root = code_root
        self.python = python
        self.components_by_id = graph.components(pipeline)
        self.executors: dict[str, JSON] = {}
        self.platform: dict[str, JSON] = {}
        self.components: dict[str, JSON] = {}
        self._executor_keys: dict[str, str] = {}
        self._component_keys: dict[str, str] = {}
        self._executor_names: set[str] = set()
        self.builder = kd.DagBuilder(pipeline, self.step_task, self.entries_task, hooks.target)

    def step_task(self, step: Step, sources: dict[str, Source], indexes: list[Source]) -> JSON:
        """The task of one step, registering its component and executor; `indexes`: the
        current index of each enclosing loop, outermost first (its step context)."""
        component = self.components_by_id[step.component]
        uses = [kx.InputUse(name, source.type) for name, source in sources.items()]
        metrics = component.id in self.metric_components
        context = kx.context_values(self.pipeline.name, len(indexes), step.retries > 0)
        executor: JSON = {
            "container": kx.container(
                step,
                component,
                uses,
                self.hooks.image(step),
                self.code_root,
                self.python,
                self.hooks.runtime_timeout(step),
                self.hooks.env(step),
                self.hooks.runtime_secrets(step),
                context,
                metrics,
            )
        }
        resources = self.hooks.resources(step)
        if resources:
            executor["container"]["resources"] = resources
        platform = self.hooks.platform(step)
        definitions: JSON = {}
        inputs = kx.input_definitions(uses, len(indexes))
        if inputs:
            definitions["inputDefinitions"] = inputs
        outputs = kx.output_definitions(component.outputs, metrics)
        if outputs:
            definitions["outputDefinitions"] = outputs
        base = names.dns_label(component.id)
        comp_name = self.shared_component(base, executor, platform, definitions)
        task: JSON = {
            "taskInfo": {"name": step.name},
            "componentRef": {"name": comp_name},
            "inputs": {
                "parameters": {
                    kx.STEP_INPUT: {"runtimeValue": {"constant": step.id}},
                    **{
                        name: index.ref
                        for name, index in zip(
                            kx.iteration_inputs(len(indexes)), indexes, strict=True
                        )
                    },
                    **{n: s.ref for n, s in sources.items() if s.kind == "parameters"},
                },
                "artifacts": {n: s.ref for n, s in sources.items() if s.kind == "artifacts"},
            },
        }
        if step.cache and not component.unhashed:  # `checks` warns about the unhashed (W001)
            task["cachingOptions"] = {"enableCache": True}
        if step.retries:
            policy: JSON = {"maxRetryCount": step.retries}
            if step.retry_delay:
                # pipec waits the same delay before every retry: a backoff factor of 1.
                policy["backoffDuration"] = duration(step.retry_delay)
                policy["backoffFactor"] = 1.0
            task["retryPolicy"] = policy
        return task

    def shared_component(
        self, base: str, executor: JSON, platform: JSON | None, definitions: JSON
    ) -> str:
        """The name of the component with these definitions run by this executor (and
        platform config), each registered once by content under a name made from `base`."""
        exec_key = json.dumps([executor, platform], sort_keys=True)
        exec_name = self._executor_keys.get(exec_key)
        if exec_name is None:
            exec_name = self.builder.unique(f"exec-{base}", self._executor_names)
            self._executor_keys[exec_key] = exec_name
            self.executors[exec_name] = executor
            if platform:
                self.platform[exec_name] = platform
        spec: JSON = {"executorLabel": exec_name, **definitions}
        comp_key = json.dumps(spec, sort_keys=True)
        comp_name = self._component_keys.get(comp_key)
        if comp_name is None:
            comp_name = self.builder.unique(f"comp-{base}", self.builder.component_names)
            self._component_keys[comp_key] = comp_name
            self.components[comp_name] = spec
        return comp_name

    def entries_task(self, loop: Loop, items: Source) -> JSON:
        """The task that writes the entries of a loop over a list known at run time
        (runtime/loop_entries.py), in the image of the loop's first step (every step image
        holds the runtime)."""
        first = next(node for node, _ in graph.walk(loop.body) if isinstance(node, Step))
        executor: JSON = {
            "container": {
                "image": self.hooks.image(first),
                "command": [self.python, "-m", kx.ENTRIES_MODULE],
                "args": [
                    f"{{{{$.inputs.parameters['{kx.ENTRIES_ITEMS}']}}}}",
                    f"{{{{$.outputs.parameters['{kd.ENTRIES}'].output_file}}}}",
                ],
            }
        }
        definitions: JSON = {
            "inputDefinitions": {
                "parameters": {kx.ENTRIES_ITEMS: {"parameterType": kx.parameter_type(items.type)}}
            },
            "outputDefinitions": {"parameters": {kd.ENTRIES: {"parameterType": "LIST"}}},
        }
        comp_name = self.shared_component("pipec-loop-entries", executor, None, definitions)
        return {
            "taskInfo": {"name": f"{loop.id}.entries"},
            "componentRef": {"name": comp_name},
            # A pure function of its input: a cached result is as good as a fresh one.
            "cachingOptions": {"enableCache": True},
            "inputs": {"parameters": {kx.ENTRIES_ITEMS: items.ref}, "artifacts": {}},
        }

    def assemble(self, default_root: str | None) -> Assembly:
        """Build everything; raise DiagnosticError listing every step that has no KFP form."""
        dags = self.builder.build()
        if self.builder.diagnostics:
            raise DiagnosticError(self.builder.diagnostics)
        components = dict(self.components)
        for dag in dags[1:]:
            components[dag.component] = dag.component_spec()
        root = dags[0].component_spec()
        parameters = root_parameters(self.pipeline)
        if parameters:
            root["inputDefinitions"] = {"parameters": parameters}
        info: JSON = {"name": names.dns_label(self.pipeline.id), "displayName": self.pipeline.name}
        if self.pipeline.description:
            info["description"] = self.pipeline.description
        spec: JSON = {
            "pipelineInfo": info,
            "root": root,
            "components": components,
            "deploymentSpec": {"executors": self.executors},
            "schemaVersion": SCHEMA_VERSION,
            "sdkVersion": SDK_VERSION,
        }
        if default_root:
            spec["defaultPipelineRoot"] = default_root
        platform = None
        if self.platform:
            platform = {
                "platforms": {"kubernetes": {"deploymentSpec": {"executors": self.platform}}}
            }
        return Assembly(spec, platform, self.executors)


def root_parameters(pipeline: Pipeline) -> JSON:
    """The root DAG's input definitions: one per pipeline parameter, with its default."""
    found: JSON = {}
    for param in pipeline.params:
        definition: JSON = {"parameterType": kx.parameter_type(param.type)}
        if not param.required:
            definition["isOptional"] = True
            if param.default is not None or kx.carried_as_json_text(param.type):
                definition["defaultValue"] = kx.kfp_value(param.default, param.type)
        found[param.name] = definition
    return found


def duration(seconds: float) -> str:
    """A protobuf Duration in its JSON form (`600s`, `1.5s`)."""
    text = f"{seconds:.9f}".rstrip("0").rstrip(".")
    return f"{text}s"
