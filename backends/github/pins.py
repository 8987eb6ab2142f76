"""The third-party actions a workflow uses, each pinned to a full commit SHA (a tag can be moved;
a commit cannot), with its version written beside it as a comment.

To update one: take the new release's commit from the action's repository, replace the SHA and
the version here, regenerate the goldens.
"""

from __future__ import annotations

import re

PINS: dict[str, tuple[str, str]] = {
    "actions/checkout": ("11bd71901bbe5b1630ceea73d27597364c9af683", "v4.2.2"),
    "actions/upload-artifact": ("ea165f8d65b6e75b540449e92b4886f43607fa02", "v4.6.2"),
    "actions/download-artifact": ("d3f86a106a0bac45b974a628896c90dbdf5c8093", "v4.3.0"),
}

_USES = re.compile(r'^(\s*(?:- )?uses: "?([\w.-]+/[\w.-]+)@([0-9a-f]{40})"?)$')


def uses(action: str) -> str:
    """`owner/name@<sha>` for a `uses:` key."""
    sha, _ = PINS[action]
    return f"{action}@{sha}"


def with_versions(text: str) -> str:
    """YAML text with `# <version>` after every pinned `uses:` line."""
    lines = []
    for line in text.splitlines():
        match = _USES.match(line)
        if match and PINS.get(match.group(2), ("", ""))[0] == match.group(3):
            line = f"{line} # {PINS[match.group(2)][1]}"
        lines.append(line)
    return "\n".join(lines) + "\n"
