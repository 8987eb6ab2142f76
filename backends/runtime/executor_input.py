"""KFP's executor input and output files, for steps run by a KFP engine (`--kfp-executor-input`).

The executor input (KFP's `{{$}}`) is JSON: `inputs.artifacts[NAME].artifacts` lists an input's
artifacts (several for a `collect` of artifacts, `isArtifactList` in the spec, in iteration
order), each with the `uri` of an output directory; `outputs.artifacts[NAME].artifacts[0].uri`
is where an artifact output goes, and `outputs.outputFile` where the executor output goes.

Where the step reads an input directory follows KFP's own convention (its launcher's and its
SDK's `Artifact.path`): a remote URI is mounted or downloaded under a local prefix (`gs://b/k` at
`/gcs/b/k` on Vertex's Cloud Storage FUSE mount, `minio://b/k` at `/minio/b/k`, `s3://b/k` at
`/s3/b/k`). KFP's launcher downloads only the first artifact of a list, so an entry whose local
path holds no output is read from its URI through fsspec (gcsfs or s3fs in the image, with the
pod's credentials; KFP's MinIO as `s3://`, its endpoint from fsspec's settings such as
`FSSPEC_S3_ENDPOINT_URL`); kfp.local hands over plain local paths.

The executor output file (`--kfp-executor-output`, KFP's `{{$.outputs.output_file}}`) lists the
step's artifact outputs with the URIs KFP gave them (`--kfp-output-uri`, KFP's
`{{$.outputs.artifacts[NAME].uri}}`): KFP's launcher and Vertex register outputs from the executor
input anyway, but kfp.local knows a task's artifact outputs only from this file (KFP's own
components always write it). These flags, not `{{$}}`, so that a step with an artifact output does
not get every value input a second time, all in one argument (Linux's 128 KiB per argument).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterable
from typing import Any

from pipec.backends.runtime import store
from pipec.backends.runtime.invocation import (
    KFP_EXECUTOR_INPUT,
    InvocationError,
    SourceKind,
    source,
)

# KFP's local mount prefix per remote scheme.
_MOUNTS = {"gs://": "/gcs/", "minio://": "/minio/", "s3://": "/s3/"}
# How a KFP placeholder an engine did not render starts.
UNRENDERED = "{{$"
# Schemes fsspec reads under another name (KFP's MinIO is S3-compatible storage).
_FSSPEC_SCHEMES = {"minio://": "s3://"}


def parse(text: str) -> dict[str, Any]:
    """The executor input document; InvocationError when it is not a JSON object."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvocationError(f"{KFP_EXECUTOR_INPUT} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvocationError(f"{KFP_EXECUTOR_INPUT} is not a JSON object")
    return document


def _artifacts(document: dict[str, Any], side: str, name: str) -> list[dict[str, Any]]:
    """`document[side].artifacts[name].artifacts`, each with a `uri`; InvocationError if not."""
    entries: Any = document.get(side, {}).get("artifacts", {}).get(name, {})
    found = entries.get("artifacts") if isinstance(entries, dict) else None
    if not isinstance(found, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("uri"), str) for entry in found
    ):
        raise InvocationError(
            f"{KFP_EXECUTOR_INPUT} has no artifact list {side}.artifacts[{name!r}] "
            "(a list of artifacts with a uri each)"
        )
    return found


def input_uris(document: dict[str, Any], name: str) -> list[str]:
    """The URIs of input `name`'s artifacts, in order."""
    return [entry["uri"] for entry in _artifacts(document, "inputs", name)]


def readable(uri: str) -> str:
    """Where the runtime reads the output directory at `uri`: its local mount when that holds
    the output, else the URI itself (in fsspec's spelling of the scheme)."""
    for scheme, mount in _MOUNTS.items():
        if uri.startswith(scheme):
            local = mount + uri.removeprefix(scheme)
            if store.exists(local):
                return local
            return _FSSPEC_SCHEMES.get(scheme, scheme) + uri.removeprefix(scheme)
    return uri


def as_artifacts_source(document: dict[str, Any], name: str) -> str:
    """An `artifacts:` SOURCE with the readable locations of input `name`'s artifacts (what a
    member of a fused chain, which has no executor input of its own, is handed)."""
    locations = [readable(uri) for uri in input_uris(document, name)]
    return source(SourceKind.ARTIFACTS, json.dumps(locations))


def write_output(path: str, uris: dict[str, str], produced: Iterable[str]) -> None:
    """Write KFP's executor output file at `path`, listing the artifact outputs among
    `produced` with their URIs (`uris`: name -> the URI KFP gave it).

    KFP's own launcher does not render `{{$.outputs.output_file}}` (it registers a task's
    outputs from the executor input, so it needs no file): a path still in that form is left
    alone rather than written as a file of that name."""
    if path.startswith(UNRENDERED):
        return
    _write_json(path, {"artifacts": _listed(uris, produced)})


def write_metrics(
    document: dict[str, Any],
    name: str,
    metrics: dict[str, float],
    uris: dict[str, str],
    produced: Iterable[str],
) -> None:
    """List the step's logged `metrics` as the metadata of its `system.Metrics` artifact
    output `name` in the executor output file the executor input names (`outputs.outputFile`:
    KFP's launcher, Vertex and kfp.local all read it, and KFP's UI shows that metadata), with
    the artifact outputs `write_output` lists. The artifact's own file holds the same JSON, so
    that every engine finds a file to keep at its URI."""
    uri = _artifacts(document, "outputs", name)[0]["uri"]
    path = document.get("outputs", {}).get("outputFile")
    if not isinstance(path, str) or not path:
        raise InvocationError(f"{KFP_EXECUTOR_INPUT} names no outputs.outputFile")
    artifacts = _listed(uris, produced)
    artifacts[name] = {"artifacts": [{"name": name, "uri": uri, "metadata": dict(metrics)}]}
    _write_json(_writable(uri), dict(sorted(metrics.items())))
    _write_json(path, {"artifacts": artifacts})


def _listed(uris: dict[str, str], produced: Iterable[str]) -> dict[str, Any]:
    return {
        name: {"artifacts": [{"name": name, "uri": uris[name]}]}
        for name in sorted(set(uris) & set(produced))
    }


def _writable(uri: str) -> str:
    """Where the runtime writes an output at `uri`: KFP's local mount of it (the launcher
    uploads from there), or the URI itself when it is local (kfp.local)."""
    for scheme, mount in _MOUNTS.items():
        if uri.startswith(scheme):
            return mount + uri.removeprefix(scheme)
    return uri


def _write_json(path: str, document: Any) -> None:
    if store.is_remote(path):  # Vertex may name a gs:// file; its FUSE mount is the usual path
        fsspec = importlib.import_module("fsspec")
        with fsspec.open(path, "w", encoding="utf-8") as handle:
            json.dump(document, handle, sort_keys=True)
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle, sort_keys=True)
