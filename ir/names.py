"""Engine-safe identifiers: the one naming rule every target relies on.

An id is lowercase ASCII letters, digits and underscores, starts with a letter, and is at most
`MAX_ID` characters. Every engine can represent that directly or by a fixed mapping (Kubernetes and
KFP replace `_` by `-`, which cannot collide because `-` never appears in an id). Display names stay
as the user wrote them; only ids reach places with strict syntax.
"""

from __future__ import annotations

import hashlib
import re

MAX_ID = 48
ID_RE = re.compile(r"^[a-z][a-z0-9_]*$")
PARAM_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UNSAFE = re.compile(r"[^a-z0-9]+")


def is_id(text: str) -> bool:
    """Whether `text` already follows the id rule."""
    return len(text) <= MAX_ID and bool(ID_RE.match(text))


def to_id(name: str, fallback: str = "step") -> str:
    """Map any display name to an id deterministically (not yet de-duplicated)."""
    text = _UNSAFE.sub("_", name.lower()).strip("_")
    if not text:
        text = fallback
    if not text[0].isalpha():
        text = f"{fallback}_{text}"
    if len(text) > MAX_ID:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        text = f"{text[: MAX_ID - 9].rstrip('_')}_{digest}"
    return text


def unique_id(
    name: str, taken: set[str], fallback: str = "step", next_suffix: dict[str, int] | None = None
) -> str:
    """`to_id(name)`, suffixed `_2`, `_3`, ... until it is not in `taken`; adds it to `taken`.

    `next_suffix` remembers where each base left off, so naming N calls of one function stays
    linear instead of re-trying every suffix from 2.
    """
    base = to_id(name, fallback)
    candidate = base
    counters = {} if next_suffix is None else next_suffix
    n = counters.get(base, 2)
    while candidate in taken:
        suffix = f"_{n}"
        candidate = base[: MAX_ID - len(suffix)] + suffix
        n += 1
    counters[base] = n
    taken.add(candidate)
    return candidate


def dns_label(identifier: str) -> str:
    """The RFC 1123 form of an id (Kubernetes and KFP names)."""
    return identifier.replace("_", "-")
