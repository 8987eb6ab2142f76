"""Probing an image once: which Python it has, for which machine and libc, and whether pipec's
step runtime imports in it (a throwaway container with no network).

Results are kept by image id in the project's `.pipec/docker-images.json`: an id names exact
content, so a result never goes stale. The image builder uses the base image's answer to install
wheels for it (`build.PythonTarget`); the local_docker target checks every image it runs steps in.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from pipec.backends.images import build
from pipec.backends.images.engine import Engine, EngineError

PROBE_FILE = "docker-images.json"
MIN_PYTHON = (3, 11)
PROBE = """\
import json, platform, sys
found = {"python": list(sys.version_info[:3]), "machine": platform.machine(),
         "libc": list(platform.libc_ver())}
if sys.version_info >= (3, 11):
    try:
        import pipec.backends.runtime
        found["runtime"] = True
    except Exception as exc:
        found["runtime"] = type(exc).__name__ + ": " + str(exc)
print("PIPEC-PROBE " + json.dumps(found))
"""


class Probes:
    """Probe results by image id, read from and written back to the project's state folder."""

    def __init__(self, engine: Engine, python: str, path: Path) -> None:
        self.engine = engine
        self.python = python
        self.path = path
        try:
            self.known: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.known = {}
        self.changed = False

    def check(self, name: str, image_id: str, runtime: bool) -> build.PythonTarget:
        """The image's Python; EngineError naming the image when it cannot run steps."""
        key = f"{self.python}@{image_id}"
        found = self.known.get(key)
        if not isinstance(found, dict) or "python" not in found or "machine" not in found:
            found = self._probe(name)
            self.known[key] = found
            self.changed = True
        version = tuple(found["python"])
        if version < MIN_PYTHON:
            raise EngineError(
                f"image {name!r} has Python {'.'.join(map(str, version))}; pipec's steps need "
                "Python >= 3.11 (use another image, or set `python` to its newer interpreter)"
            )
        if runtime and found.get("runtime") is not True:
            raise EngineError(
                f"image {name!r} does not have pipec's step runtime (`import "
                f"pipec.backends.runtime` failed: {found.get('runtime')}): install pipec in it, "
                "or leave `image` unset and set `base_image` so pipec builds the step image"
            )
        libc = found.get("libc") or ["", ""]
        return build.PythonTarget(
            (int(version[0]), int(version[1])), str(found["machine"]), (libc[0], libc[1])
        )

    def _probe(self, name: str) -> dict[str, Any]:
        python = self.python
        code, output = self.engine.run_once(name, [python, "-c", PROBE], "none")
        for line in output.splitlines():
            if line.startswith("PIPEC-PROBE "):
                found: dict[str, Any] = json.loads(line.removeprefix("PIPEC-PROBE "))
                return found
        why = output.strip().splitlines()[-1] if output.strip() else f"exit code {code}"
        raise EngineError(
            f"image {name!r} cannot run `{python}` (the `python` setting): {why}; pipec's steps "
            "need Python >= 3.11 in the image"
        )

    def save(self) -> None:
        if not self.changed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{time.time_ns()}")
        temporary.write_text(json.dumps(self.known, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temporary, self.path)


def base_image_id(engine: Engine, base: str) -> str:
    """The id of the `base_image` setting's image; EngineError saying how to get one."""
    base_id = engine.image_id(base)
    if base_id is None:
        raise EngineError(
            f"base image {base!r} is not on this Docker engine: build one (`docker build -t "
            f"{base} DIR`; any image with Python >= 3.11) or load one (`docker load -i FILE`)"
        )
    return base_id
