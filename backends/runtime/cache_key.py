"""The step cache key: one definition for the local runner and for the runtime's own cache.

A step execution can be reused when its code (`component.code_hash`: the function and what it uses
from its module), image, environment variables, parameter values and the content hashes of its
inputs all match an earlier successful execution. The key is kept as its parts, so a miss can say
which part changed. The local runner (`runner.reuse`) keys its metadata store with it; engines
without a cache of their own get the runtime's (`runtime.reuse`), which computes the same parts
inside the step. Standard library and the runtime only, like the rest of the runtime.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from pipec.backends.runtime.materializers import canonical_json


def digest(value: Any) -> str:
    """`sha256:` of a JSON-able value's canonical text."""
    return "sha256:" + hashlib.sha256(canonical_json(value).encode()).hexdigest()


def env_digest(env: Mapping[str, str] | None) -> str:
    """The env part: a digest of the step's environment variables (secret values stay out: only
    their names are part of the step)."""
    return digest(dict(sorted((env or {}).items())))


def key_parts(
    code_hash: str,
    image: str | None,
    params: Mapping[str, Any],
    input_hashes: Mapping[str, str],
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The parts of a cache key: code, image, the step's environment variables, a digest per
    parameter value, a hash per input."""
    return {
        "code": code_hash,
        "image": image,
        "env": env_digest(env),
        "params": {name: digest(value) for name, value in sorted(params.items())},
        "inputs": dict(sorted(input_hashes.items())),
    }


def cache_key(parts: Mapping[str, Any]) -> str:
    """One string for all the parts."""
    return digest(parts)


def explain_miss(parts: Mapping[str, Any], previous: Mapping[str, Any] | None) -> str:
    """Why no earlier execution could be reused, comparing with the latest one of this step."""
    if previous is None:
        return "no earlier execution"
    changed: list[str] = []
    if parts["code"] != previous.get("code"):
        changed.append("code changed")
    if parts["image"] != previous.get("image"):
        changed.append("image changed")
    if parts.get("env") != previous.get("env"):
        changed.append("env changed")
    changed += _changed_names("param", parts["params"], previous.get("params", {}))
    changed += _changed_names("input", parts["inputs"], previous.get("inputs", {}))
    if not changed:
        return "outputs of the earlier execution are gone"
    return ", ".join(changed)


def _changed_names(what: str, now: Mapping[str, str], before: Mapping[str, str]) -> list[str]:
    names = sorted(n for n in set(now) | set(before) if now.get(n) != before.get(n))
    if not names:
        return []
    plural = "s" if len(names) > 1 else ""
    return [f"{what}{plural} {', '.join(names)} changed"]
