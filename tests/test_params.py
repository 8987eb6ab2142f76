"""Pipeline parameter values from the command line: text for strings, JSON otherwise, `null` for
None, ints widened to floats where the type says float."""

from __future__ import annotations

import pytest

from pipec.backends.params import ParamError, parse_pairs, resolve_params
from pipec.ir import types

DECLARED = {
    "name": {"type": "str", "required": False, "default": "x"},
    "label": {"type": "optional[str]", "required": False, "default": "d"},
    "lr": {"type": "float", "required": False, "default": 0.1},
    "lrs": {"type": "list[float]", "required": False, "default": [0.1]},
    "limit": {"type": "optional[int]", "required": False, "default": 3},
}


def test_text_json_null_and_widening() -> None:
    given = parse_pairs(
        ["name=null", "label=null", "lr=1", "lrs=[1, 2.5]", "limit=null"], DECLARED
    )
    values = resolve_params(DECLARED, given)
    assert values["name"] == "null"  # a plain str parameter takes the text as is
    assert values["label"] is None
    assert values["lr"] == 1.0 and isinstance(values["lr"], float)
    assert values["lrs"] == [1.0, 2.5] and all(isinstance(v, float) for v in values["lrs"])
    assert values["limit"] is None


def test_optional_str_keeps_other_text() -> None:
    assert resolve_params(DECLARED, parse_pairs(['label="null"'], DECLARED))["label"] == '"null"'


@pytest.mark.parametrize(
    ("pair", "message"),
    [("lr=fast", "expects float"), ("bogus=1", "unknown parameter"), ("lr", "name=value")],
)
def test_bad_values(pair: str, message: str) -> None:
    with pytest.raises(ParamError, match=message):
        resolve_params(DECLARED, parse_pairs([pair], DECLARED))


def test_coerce_leaves_bools_and_other_types_alone() -> None:
    assert types.coerce(True, "float") is True
    assert types.coerce(3, "int") == 3 and isinstance(types.coerce(3, "int"), int)
    assert types.coerce({"a": 1}, "dict[str, float]") == {"a": 1.0}
