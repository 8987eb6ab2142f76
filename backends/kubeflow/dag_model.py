"""One KFP DAG while it is being built, and how it is written out as a KFP ComponentSpec.

The walk over the IR (dag.py) adds the tasks; the channel plumbing (channels.py) adds the inputs,
outputs and dependencies a value crossing DAG levels needs. Both name a DAG by its path (the keys
of the IR scopes around it; the root is `()`) and a node's task by `task_name`, and both raise
`NoKfpForm` for what KFP cannot express. Kept apart from both so that neither imports the other's
internals to reach the shared shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipec.ir import names

JSON = dict[str, Any]
Path = tuple[str, ...]


class NoKfpForm(Exception):
    """Something in the pipeline that has no KFP form; becomes a U001 diagnostic on the node
    being built. `what` completes "target T cannot express ..."."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def task_name(node_id: str) -> str:
    """The name of the task that runs node `node_id` in its DAG (KFP wants DNS labels)."""
    return names.dns_label(node_id)


def common_path(a: Path, b: Path) -> Path:
    """The deepest DAG that holds both `a` and `b`."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


@dataclass
class Dag:
    """One DAG under construction: the root, or a sub-DAG run by task `task` of its parent."""

    path: Path
    task: str = ""
    component: str = ""
    tasks: dict[str, JSON] = field(default_factory=dict)
    inputs: dict[str, JSON] = field(default_factory=lambda: {"parameters": {}, "artifacts": {}})
    outputs: dict[str, JSON] = field(default_factory=lambda: {"parameters": {}, "artifacts": {}})
    selectors: dict[str, JSON] = field(default_factory=lambda: {"parameters": {}, "artifacts": {}})
    deps: dict[str, set[str]] = field(default_factory=dict)
    loop: str = ""
    branch: str = ""

    def component_spec(self) -> JSON:
        """This DAG as a KFP ComponentSpec."""
        dag: JSON = {
            "tasks": {
                name: _finish(task, self.deps.get(name, set())) for name, task in self.tasks.items()
            }
        }
        outputs = {
            kind: {name: _selector(kind, sel) for name, sel in found.items()}
            for kind, found in self.selectors.items()
            if found
        }
        if outputs:
            dag["outputs"] = outputs
        spec: JSON = {"dag": dag}
        for key, defs in (("inputDefinitions", self.inputs), ("outputDefinitions", self.outputs)):
            present = {kind: found for kind, found in defs.items() if found}
            if present:
                spec[key] = present
        return spec


def _selector(kind: str, source: JSON) -> JSON:
    if kind == "parameters":
        return {"valueFromParameter": source}
    return {
        "artifactSelectors": [
            {"producerSubtask": source["producerSubtask"], "outputArtifactKey": source["key"]}
        ]
    }


def _finish(task: JSON, deps: set[str]) -> JSON:
    """A task with its dependencies (sorted) and without empty input groups."""
    done = {k: v for k, v in task.items() if k != "inputs"}
    if deps:
        done["dependentTasks"] = sorted(deps)
    inputs = {kind: found for kind, found in task.get("inputs", {}).items() if found}
    if inputs:
        done["inputs"] = inputs
    return done
