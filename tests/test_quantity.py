"""Kubernetes quantities, parsed once for the validator and every target."""

from __future__ import annotations

import pytest

from pipec.ir import quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("16Gi", 16 * 2**30),
        ("512M", 512e6),
        ("1.5Gi", 1.5 * 2**30),
        ("1000", 1000.0),
        ("500m", 0.5),
        ("1e9", 1e9),
        ("2k", 2000.0),
    ],
)
def test_amounts(text: str, value: float) -> None:
    assert quantity.is_quantity(text)
    assert quantity.amount(text) == value


@pytest.mark.parametrize("text", ["16 gigs", "", "Gi", "1K", "-1Gi", "1.Gi", "lots"])
def test_malformed(text: str) -> None:
    assert not quantity.is_quantity(text)
    with pytest.raises(ValueError, match="not a quantity"):
        quantity.amount(text)


def test_bytes_are_whole() -> None:
    assert quantity.to_bytes("1.5Gi") == int(1.5 * 2**30)
