"""The workflow file: triggers, least privilege, concurrency, and the jobs (`jobs`, `layout`).

* `on.workflow_dispatch.inputs` (and `on.workflow_call.inputs`): one input per parameter, typed
  `number`, `boolean` or `string`; lists, dicts, optionals and `any` are JSON text in a string
  input, checked by the `params` job. More parameters than GitHub takes (`MAX_INPUTS`) become one
  string input `params` holding a JSON object of the values to change.
* A default GitHub would read as an expression (it holds `${{`) is not written; the `params` job
  applies it when the input arrives empty (so such a parameter cannot be set to "" by dispatch).
* `on.schedule` from the pipeline's schedule (a scheduled run has no inputs: defaults apply).
* `permissions: contents: read` (checkout only), a `concurrency` group that queues runs of one
  pipeline on one ref instead of cancelling them, and `bash` for every `run:`.

The text is `common.yaml_text` (sorted keys, every value quoted unless plainly safe), with each
pinned action's version appended as a comment (`pins`).
"""

from __future__ import annotations

import json
from typing import Any

from pipec.backends.common import yaml_text
from pipec.backends.github import layout as lay
from pipec.backends.github import pins
from pipec.backends.github.jobs import JobWriter
from pipec.backends.github.settings import GithubSettings
from pipec.ir.model import Param, Pipeline

EXPRESSION = "${{"  # GitHub reads an expression wherever this appears, even in a name
MAX_INPUTS = 25  # workflow_dispatch takes at most 25 inputs
PACKED_INPUT = "params"
NUMBER_TYPES = ("int", "float")


def path(pipeline: Pipeline) -> str:
    """Where the workflow goes in a repository (`-o .` puts it in place)."""
    return f".github/workflows/{pipeline.id}.yml"


def render(pipeline: Pipeline, settings: GithubSettings) -> str:
    """The workflow text of a checked pipeline."""
    layout = lay.build(pipeline)
    writer = JobWriter(layout, settings)
    jobs: dict[str, Any] = {}
    for step in layout.steps.values():
        jobs[step.id] = writer.step_job(step)
    for loop in layout.loops.values():
        if layout.nested(loop):
            jobs[lay.iterations_job(loop.id)] = writer.iterations_job(loop)
    for condition in layout.conditions.values():
        if layout.tests[condition.id] is None:
            jobs[lay.test_job(condition.id)] = writer.test_job(condition)
    packed = len(pipeline.params) > MAX_INPUTS
    if pipeline.params:
        declared = [p.model_dump(mode="json") for p in pipeline.params]
        jobs[lay.PARAMS_JOB] = writer.params_job(
            declared, PACKED_INPUT if packed else None, unwritten_defaults(pipeline)
        )
    workflow: dict[str, Any] = {
        "name": pipeline.name if EXPRESSION not in pipeline.name else pipeline.id,
        "on": _triggers(pipeline, packed),
        "permissions": {"contents": "read"},
        "concurrency": {"group": settings.concurrency, "cancel-in-progress": False},
        "defaults": {"run": {"shell": "bash"}},
        "jobs": jobs,
    }
    return pins.with_versions(yaml_text.dump(workflow))


def _triggers(pipeline: Pipeline, packed: bool) -> dict[str, Any]:
    dispatch: dict[str, Any] = {}
    call: dict[str, Any] = {}
    if packed:
        note = "JSON object of the parameters to change (this pipeline has too many for inputs)"
        one = {"description": note, "type": "string", "required": False, "default": "{}"}
        dispatch[PACKED_INPUT] = one
        call[PACKED_INPUT] = one
    else:
        for param in pipeline.params:
            dispatch[param.name] = _input(param)
            call[param.name] = _input(param)
    on: dict[str, Any] = {
        "workflow_dispatch": {"inputs": dispatch} if dispatch else {},
        "workflow_call": {"inputs": call} if call else {},
    }
    if pipeline.schedule:
        on["schedule"] = [{"cron": pipeline.schedule}]
    return on


def _input(param: Param) -> dict[str, Any]:
    """One typed input; the `params` job checks what arrives (GitHub checks only the kind)."""
    spec: dict[str, Any] = {"description": param.type, "required": param.required}
    if param.type in NUMBER_TYPES:
        spec["type"] = "number"
    elif param.type == "bool":
        spec["type"] = "boolean"
    else:
        spec["type"] = "string"
    if not param.required:
        default = param.default
        if spec["type"] == "string" and param.type != "str":
            default = types_json(default)
        if isinstance(default, str) and EXPRESSION in default:
            # GitHub would evaluate it: the params job applies this default instead.
            spec["description"] += " (default applied by pipec when empty)"
        elif default is not None:
            spec["default"] = default
    return spec


def unwritten_defaults(pipeline: Pipeline) -> list[str]:
    """Parameters whose default cannot be written as an input's default (see `_input`)."""
    found = []
    for param in pipeline.params:
        default = param.default
        if param.type not in ("str", "bool", *NUMBER_TYPES) and not param.required:
            default = types_json(default)
        if isinstance(default, str) and EXPRESSION in default and not param.required:
            found.append(param.name)
    return found


def types_json(value: Any) -> str:
    """A JSON-typed parameter's value as the text of its string input."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
