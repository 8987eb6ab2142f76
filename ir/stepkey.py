"""What a step computes, as one comparable string: two steps with equal keys do the same work.

The key holds everything that decides a step's result or how it runs: the function (module,
qualified name, code hash and return shape, not the component's id), every argument's binding,
the image, resources, environment, secret names, retries, timeout, cache flag and `.after()`.
It leaves out only what names the call site: the step's id, display name and source line. The
optimizer's common-work rule (`pipec.passes.optimize.cse`) merges steps with equal keys; emitters
that de-duplicate their own definitions can use it too.
"""

from __future__ import annotations

import json

from pipec.ir.model import Component, Step


def work_key(step: Step, component: Component) -> str:
    """The key of `step` (calling `component`), as canonical JSON text."""
    data = {
        "function": [component.module, component.function, component.code_hash],
        "returns": component.returns,
        "unhashed": sorted(component.unhashed),
        "args": {name: binding.model_dump(mode="json") for name, binding in step.args.items()},
        "image": step.image,
        "resources": step.resources.model_dump(mode="json"),
        "env": step.env,
        "secrets": sorted(set(step.secrets)),
        "retries": [step.retries, step.retry_delay],
        "timeout": step.timeout,
        "cache": step.cache,
        "after": sorted(set(step.after)),
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
