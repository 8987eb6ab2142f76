"""Type strings: parsing, assignability, annotations and literals."""

from __future__ import annotations

import pathlib
from typing import Any, Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipec.ir import types


@pytest.mark.parametrize(
    "text",
    [
        "int",
        "float",
        "str",
        "bool",
        "none",
        "any",
        "list[int]",
        "dict[str, list[float]]",
        "optional[str]",
        "artifact[bytes]",
        "artifact[pathlib.Path]",
        "list[artifact[bytes]]",
    ],
)
def test_parse_round_trip(text: str) -> None:
    assert str(types.parse(text)) == text


@pytest.mark.parametrize("bad", ["", "integer", "list[", "dict[int, str]", "artifact[]", "int]"])
def test_parse_errors(bad: str) -> None:
    with pytest.raises(types.TypeSyntaxError):
        types.parse(bad)


@pytest.mark.parametrize(
    ("source", "target", "ok"),
    [
        ("int", "float", True),
        ("float", "int", False),
        ("bool", "int", False),
        ("none", "optional[int]", True),
        ("int", "optional[float]", True),
        ("optional[int]", "int", False),
        ("list[int]", "list[float]", True),
        ("list[float]", "list[int]", False),
        ("artifact[bytes]", "artifact[bytes]", True),
        ("artifact[bytes]", "artifact[numpy.ndarray]", False),
        ("artifact[bytes]", "any", True),
        ("any", "int", True),
        ("dict[str, int]", "dict[str, float]", True),
        ("list[any]", "list[int]", True),
    ],
)
def test_assignable(source: str, target: str, ok: bool) -> None:
    assert types.assignable(source, target) is ok


@pytest.mark.parametrize(
    ("annotation", "text"),
    [
        (int, "int"),
        (list[float], "list[float]"),
        (list, "list[any]"),
        (dict[str, int], "dict[str, int]"),
        (Optional[int], "optional[int]"),  # noqa: UP045 - the old spelling must work too
        (int | None, "optional[int]"),
        (bytes, "artifact[bytes]"),
        (pathlib.Path, "artifact[pathlib.Path]"),
        (Any, "any"),
        (None, "none"),
        (int | str, "any"),
    ],
)
def test_from_annotation(annotation: object, text: str) -> None:
    assert types.from_annotation(annotation) == text


def test_value_and_artifact() -> None:
    assert types.is_value("dict[str, list[int]]")
    assert not types.is_value("list[artifact[bytes]]")
    assert types.item_type("list[str]") == "str"
    assert types.item_type("int") is None


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_every_literal_fits_its_inferred_type(value: object) -> None:
    inferred = types.infer(value)
    assert inferred is not None
    assert types.parse(inferred)
    assert types.check_value(value, inferred)


def test_non_values_have_no_type() -> None:
    assert types.infer({1, 2}) is None
    assert types.infer({1: "a"}) is None
    assert types.infer(b"x") is None


def test_values_are_checked_element_by_element() -> None:
    # A run-time value (`--param`) or a literal: [0.1, "x"] is a list[any] by inference, but it
    # does not fit list[float].
    assert not types.check_value([0.1, "x"], "list[float]")
    assert not types.check_value({"a": "b"}, "dict[str, int]")
    assert not types.check_value([[1], ["x"]], "list[list[int]]")
    assert types.check_value([1, 0.5], "list[float]")
    assert types.check_value([None, 1], "list[optional[int]]")
    assert types.check_value({"a": [1, None]}, "dict[str, any]")
    assert not types.check_value(float("nan"), "float")
    assert not types.check_value(True, "int")
