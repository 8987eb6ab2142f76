"""Checks made before the first step of a run starts, so that a run that cannot work fails with
one clear error (exit 2) instead of one traceback per step."""

from __future__ import annotations

import importlib
import os
import tempfile

from pipec.backends.runner.results import RunError
from pipec.backends.runtime import store


def check_artifact_root(root: str) -> None:
    """The artifact root can take outputs: a local folder is created and written to once; for a
    URL, the file system implementation for its protocol is installed (nothing is sent)."""
    if store.is_remote(root):
        fsspec = importlib.import_module("fsspec")
        protocol = root.split("://", 1)[0]
        try:
            fsspec.get_filesystem_class(protocol)
        except ImportError as exc:
            raise RunError(
                f"artifact_root {root!r} cannot be used: {exc} (its file system package is not "
                "installed here)"
            ) from None
        except ValueError:
            raise RunError(
                f"artifact_root {root!r}: no file system is known for {protocol}:// (fsspec "
                "protocols: file, s3, gs, az, memory, ...)"
            ) from None
        return
    folder = store.local_path(root)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(prefix=".pipec-probe-", dir=folder)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise RunError(
            f"artifact_root {str(folder)!r} cannot be written: {reason} (set artifact_root in "
            "[tool.pipec.targets.local] or with --set artifact_root=... to a folder you can "
            "write)"
        ) from None
