"""Every conformance adapter (see tests/conformance/harness.py and README.md), found here.

Each module in this package is one target's adapter file (or one family's: `kfp` holds kubeflow
and vertex) and ends with `ADAPTERS: list[Harness]`, one entry per mode where the target's modes
start steps differently. Adding a target is adding its file: nothing here lists targets by hand
(a hand-kept list is what issue 8 calls a defect, and branches adding targets would all edit it).
Helpers that are not adapters live beside this package (`tests/conformance/images.py`).
"""

from __future__ import annotations

import importlib
import pkgutil

from tests.conformance.harness import Harness


def _discover() -> list[Harness]:
    """Every module's ADAPTERS: the local target's first (the reference), then by target name,
    each module's own order kept."""
    found: list[Harness] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        adapters = getattr(module, "ADAPTERS", None)
        if not isinstance(adapters, list) or not adapters:
            raise ImportError(f"{module.__name__} is in adapters/ but defines no ADAPTERS list")
        found.extend(adapters)
    return sorted(found, key=lambda a: (a.target != "local", a.target))


ADAPTERS: list[Harness] = _discover()


def adapter_ids() -> list[str]:
    """Every adapter's test id."""
    return [a.id for a in ADAPTERS]


def reference() -> Harness:
    """The local target's adapter: every run is compared with its run."""
    (local,) = [a for a in ADAPTERS if a.id == "local"]
    return local
