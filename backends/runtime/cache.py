"""The runtime's own step cache, for engines without one (airflow, github, kubernetes in-cluster).

With `--cache-root ROOT --cache-key JSON` the runtime completes the compile-time key parts (code
hash, image, env digest) with a digest per parameter value and the content hash of every input
artifact, exactly as the local runner does (`runtime.cache_key`), and then

* on a hit reuses the outputs of the earlier execution instead of calling the step: each is copied
  to where the engine expects it this time (checked against the recorded content hash first, then
  placed atomically), and `--output-value`/`--output-text`/KFP's executor output are written as
  after a run;
* with `PIPEC_NO_CACHE=1` in its environment (`pipec run --no-cache` under act) reuses nothing;
* on a miss prints why (`not reused: code changed`, `no earlier execution`, ...), and after a
  successful run records the execution.

The index lives in the artifact store, beside the outputs:

    ROOT/.pipec-cache/<pipeline>/<step>/<key hex>.json   an execution: its parts and outputs
    ROOT/.pipec-cache/<pipeline>/<step>/latest.json      the latest one, run or reused (what a
                                                         miss is explained against)

An entry is written only after every output of the execution is complete, and each entry is one
file written whole: locally to a temporary sibling renamed into place, on object stores as one
object (a PUT is atomic there). Concurrent writers of the same key write equivalent entries; the
last rename wins. An entry whose outputs are gone or no longer hash to what it recorded is a miss.
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipec.backends.runtime import executor_input, store
from pipec.backends.runtime.cache_key import cache_key, digest, explain_miss
from pipec.backends.runtime.invocation import (
    Invocation,
    InvocationError,
    SourceKind,
    parse_cache_key,
    split_source,
)

NO_CACHE_VARIABLE = "PIPEC_NO_CACHE"
"""Set to 1 in a step's environment: reuse nothing (still record), as `pipec run --no-cache`."""
INDEX_DIR = ".pipec-cache"
LATEST = "latest.json"
ENTRY_VERSION = 1


@dataclass(frozen=True)
class Lookup:
    """The key of one step execution and where its index entries live."""

    folder: str
    parts: dict[str, Any]
    key: str

    @property
    def entry(self) -> str:
        return f"{self.folder}/{self.key.removeprefix('sha256:')}.json"

    @property
    def latest(self) -> str:
        return f"{self.folder}/{LATEST}"


def lookup_of(invocation: Invocation[str]) -> Lookup:
    """The full key of this execution: the compile-time parts and what the inputs are now."""
    assert invocation.cache_root is not None and invocation.cache_key is not None
    static = parse_cache_key(invocation.cache_key)
    params: dict[str, Any] = {}
    hashes: dict[str, str] = {}
    for name, text in invocation.inputs.items():
        kind, rest = split_source(text)
        if kind in (SourceKind.ARTIFACT, SourceKind.ARTIFACTS, SourceKind.KFP_ARTIFACTS):
            uris = _artifact_uris(kind, rest, invocation)
            found = [_hash_of(uri) for uri in uris]
            hashes[name] = found[0] if kind is SourceKind.ARTIFACT else digest(found)
        else:
            from pipec.backends.runtime.core import load_input  # core calls this module

            params[name] = load_input(text)
    parts = {
        "code": static["code"],
        "image": static["image"],
        "env": static["env"],
        "params": {name: digest(value) for name, value in sorted(params.items())},
        "inputs": dict(sorted(hashes.items())),
    }
    folder = "/".join(
        [invocation.cache_root.rstrip("/"), INDEX_DIR, str(static["pipeline"]), str(static["step"])]
    )
    return Lookup(folder, parts, cache_key(parts))


def _artifact_uris(kind: SourceKind, rest: str, invocation: Invocation[str]) -> list[str]:
    if kind is SourceKind.ARTIFACT:
        return [rest]
    if kind is SourceKind.KFP_ARTIFACTS:
        assert invocation.kfp_executor_input is not None  # parse() checked it
        document = executor_input.parse(invocation.kfp_executor_input)
        return [executor_input.readable(u) for u in executor_input.input_uris(document, rest)]
    uris = json.loads(rest)
    if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
        raise InvocationError("artifacts: takes a JSON list of output directories")
    return uris


def _hash_of(uri: str) -> str:
    meta = store.read_meta(uri)
    if meta is None:
        raise InvocationError(f"input artifact {uri!r} does not exist (no {store.META_FILE})")
    return str(meta["hash"])


def serve(invocation: Invocation[str], lookup: Lookup) -> bool:
    """Reuse an earlier execution's outputs when one matches (True); else say why (False)."""
    if os.environ.get(NO_CACHE_VARIABLE) == "1":
        _say(f"not reused: --no-cache ({NO_CACHE_VARIABLE}=1)")
        return False
    entry = _read_json(lookup.entry)
    if entry is None or entry.get("parts") != lookup.parts:
        latest = _read_json(lookup.latest)
        previous = latest.get("parts") if latest else None
        _say(f"not reused: {explain_miss(lookup.parts, previous)}")
        return False
    recorded: Mapping[str, Any] = entry.get("outputs", {})
    missing = sorted(set(invocation.outputs) - set(recorded))
    if missing:
        _say(f"not reused: the earlier execution has no output {', '.join(missing)}")
        return False
    metas: dict[str, dict[str, Any]] = {}
    try:
        for name, dest in invocation.outputs.items():
            metas[name] = store.copy(recorded[name]["uri"], dest, recorded[name]["hash"])
    except (FileNotFoundError, store.StoredOutputChanged) as exc:
        _say(f"not reused: outputs of the earlier execution are gone or changed ({exc})")
        return False
    from pipec.backends.runtime.core import write_extras  # core calls this module

    write_extras(invocation, metas)
    _say(f"reused the outputs of an earlier execution ({lookup.key})")
    _record(lookup, entry)  # the latest execution of the step, as the local runner counts it
    return True


def remember(invocation: Invocation[str], lookup: Lookup) -> None:
    """Record a successful execution (its outputs are complete: the step has returned)."""
    outputs: dict[str, dict[str, str]] = {}
    for name, dest in sorted(invocation.outputs.items()):
        meta = store.read_meta(dest)
        if meta is None:  # never recorded half: an output without meta.json is no output
            _say(f"not recorded: output {name} at {dest} is incomplete")
            return
        outputs[name] = {"uri": dest, "hash": str(meta["hash"])}
    _record(lookup, {"version": ENTRY_VERSION, "parts": lookup.parts, "outputs": outputs})


def _record(lookup: Lookup, entry: Mapping[str, Any]) -> None:
    text = json.dumps(entry, sort_keys=True, indent=1)
    try:
        _write_whole(lookup.entry, text)
        _write_whole(lookup.latest, text)
    except OSError as exc:  # the step succeeded; only later runs lose the reuse
        _say(f"not recorded: {type(exc).__name__}: {exc}")


def _read_json(uri: str) -> dict[str, Any] | None:
    try:
        if store.is_remote(uri):
            fsspec = importlib.import_module("fsspec")

            with fsspec.open(uri, "r", encoding="utf-8") as handle:
                text = handle.read()
        else:
            text = store.local_path(uri).read_text(encoding="utf-8")
        value = json.loads(text)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # unreadable: the same as absent, but say so
        _say(f"ignored unreadable cache entry {uri}: {exc}")
        return None
    return value if isinstance(value, dict) else None


def _write_whole(uri: str, text: str) -> None:
    """Write `uri` so that a reader sees the old file or the new one, never a part."""
    if store.is_remote(uri):
        fsspec = importlib.import_module("fsspec")

        fs, path = fsspec.core.url_to_fs(uri)
        fs.pipe_file(path, text.encode())  # one object, one PUT
        return
    target = store.local_path(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        staging.write_text(text, encoding="utf-8")
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)


def _say(text: str) -> None:
    print(f"pipec runtime: cache: {text}", file=sys.stderr, flush=True)
