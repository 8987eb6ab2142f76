"""A `foreach`'s items as KFP iterates them: one entry `{"index": "<i>", "item": <item>}` each.

KFP renders no iteration index (no placeholder on Kubeflow, Vertex or kfp.local), so the KFP
targets iterate over these entries instead of the bare items and read `item` and `index` out of
the current entry with a `parameterExpressionSelector`, as KFP's own compiler reads a field of a
loop item (backends/kubeflow/channels.py). The index is text: a selected number would reach the step
as a float on some engines ("0.0"), and the step context wants the digits.

A constant list's entries are formed when compiling (`entries`). Any other list (a pipeline
parameter, a step output, an enclosing loop's item) exists only at run time: a small task runs
`python -m pipec.backends.runtime.loop_entries ITEMS OUTPUT` with the list's JSON rendering and
KFP's output parameter file, and the loop iterates over what it writes. The items are parsed and
written back as they came, so every item keeps its value and type as KFP rendered them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

INDEX = "index"
ITEM = "item"


def entries(items: list[Any]) -> list[dict[str, Any]]:
    """The entries a loop over `items` iterates over, in order."""
    return [{INDEX: str(i), ITEM: item} for i, item in enumerate(items)]


def main(argv: list[str]) -> int:
    """`ITEMS OUTPUT`: write the entries of the JSON list ITEMS to the file OUTPUT."""
    if len(argv) != 2:
        print("usage: python -m pipec.backends.runtime.loop_entries ITEMS OUTPUT", file=sys.stderr)
        return 2
    items_text, output = argv
    try:
        items = json.loads(items_text)
    except ValueError:
        items = None
    if not isinstance(items, list):
        print(f"loop_entries: the items are not a JSON list: {items_text[:200]!r}", file=sys.stderr)
        return 1
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries(items), sort_keys=True), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
