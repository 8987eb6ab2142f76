"""Run a pipeline with the local target inside the test image and print, per step instance,
its status, JSON outputs and every output's content hash: the reference a kubernetes run of the
same pipeline, in the same image and environment, must match."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pipec import driver
from pipec.backends.base import RunOptions
from pipec.backends.runtime import store


def main() -> None:
    ref, params = sys.argv[1], json.loads(sys.argv[2])
    compiled = driver.prepare(ref, "local", [f"artifact_root={sys.argv[3]}"])
    outcome = compiled.backend.run(compiled.pipeline, params, RunOptions(view="quiet"))
    assert outcome.result is not None
    found = {}
    for step in outcome.result.steps:
        key = step.step_id + "".join(f"[{i}]" for i in step.iteration)
        hashes = {n: (store.read_meta(uri) or {}).get("hash") for n, uri in step.artifacts.items()}
        found[key] = {"status": step.status, "outputs": step.outputs, "hashes": hashes}
    print(json.dumps({"status": outcome.result.status, "steps": found}, sort_keys=True))
    Path("/tmp").exists()


if __name__ == "__main__":
    main()
