"""`pipec.lock`: the images `pipec build` made, by target and pipeline, for `pipec compile`.

The file sits next to `pyproject.toml` (not in `.pipec/`, which holds run state and is ignored by
version control): it is an input of compile, like the sources, and belongs in the repository, so
a compile on a machine without Docker (CI) writes the same files as on the machine that built.
It holds no time and no path of this machine; keys are sorted, so a build that changed nothing
rewrites it byte for byte.

Each entry records the image reference compile writes (by digest once pushed) and a hash of each
input of the image (`Recipe.source_inputs`). Compile recomputes those hashes; when one differs
(the code was edited since the build, the requirements or pipec changed) it stops with an error
saying what changed, since the recorded image would run old code. The base image is recorded
by name: rebuilding it under the same name is not seen without Docker (`pipec build` sees it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipec.backends.settings import SettingsError

LOCK_FILE = "pipec.lock"
VERSION = 1


@dataclass(frozen=True)
class LockedImage:
    """One built image: what compile names and what it was built from."""

    ref: str
    """`registry/name@sha256:...` once pushed, else the local content-hash tag."""
    tag: str
    """The content-hash tag it was built (and pushed) under."""
    inputs: dict[str, str]
    """`Recipe.source_inputs()` at build time."""

    def to_json(self) -> dict[str, Any]:
        """The entry as written."""
        return {"ref": self.ref, "tag": self.tag, "inputs": dict(sorted(self.inputs.items()))}


def read(root: Path) -> dict[str, dict[str, LockedImage]]:
    """target -> pipeline id -> image; empty when there is no lock. SettingsError naming the file
    when it is not a lock pipec wrote."""
    path = root / LOCK_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SettingsError(f"{path} cannot be read ({exc.strerror})") from None
    try:
        data = json.loads(text)
        if data.get("version") != VERSION:
            raise ValueError(f"version {data.get('version')!r}, not {VERSION}")
        return {
            target: {
                pipeline: LockedImage(str(e["ref"]), str(e["tag"]), dict(e["inputs"]))
                for pipeline, e in by_pipeline.items()
            }
            for target, by_pipeline in data["images"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SettingsError(
            f"{path} is not a lock file pipec wrote ({exc}): remove it and run `pipec build` again"
        ) from None


def record(root: Path, target: str, pipeline: str, image: LockedImage) -> bool:
    """Write `image` for (`target`, `pipeline`), keeping every other entry; whether the file
    changed."""
    locked = read(root)
    locked.setdefault(target, {})[pipeline] = image
    data = {
        "about": "written by `pipec build`, read by `pipec compile`: keep it in version control",
        "version": VERSION,
        "images": {
            t: {p: e.to_json() for p, e in sorted(by_pipeline.items())}
            for t, by_pipeline in sorted(locked.items())
        },
    }
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    path = root / LOCK_FILE
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)  # a compile reading meanwhile sees the old or the new lock
    return True


def changed(locked: LockedImage, now: dict[str, str]) -> list[str]:
    """The inputs whose hash differs from the build's ("code", "requirements", ...)."""
    return sorted(k for k in {*locked.inputs, *now} if locked.inputs.get(k) != now.get(k))
