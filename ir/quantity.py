"""Kubernetes resource quantities (`512Mi`, `16Gi`, `2G`, `500m`, `1e9`): the one parser every
part uses, so the validator and each target agree on what `Resources.memory` / `.disk` mean."""

from __future__ import annotations

import re

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?(?:[eE][0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
_FACTORS: dict[str, float] = {
    "": 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def is_quantity(text: str) -> bool:
    """Whether `text` is a quantity Kubernetes accepts."""
    return _QUANTITY.match(text) is not None


def amount(text: str) -> float:
    """The quantity in base units (bytes for memory and disk); ValueError when malformed."""
    match = _QUANTITY.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a quantity (e.g. 512Mi, 16Gi, 2G)")
    return float(match.group(1)) * _FACTORS[match.group(2) or ""]


def to_bytes(text: str) -> int:
    """A memory or disk quantity in whole bytes."""
    return int(amount(text))
