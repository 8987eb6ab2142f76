"""Pipeline parameter values from the command line: text for strings, JSON otherwise, `null` for
None, ints widened to floats where the type says float."""

from __future__ import annotations

import pytest

from pipec.backends.params import ParamError, parse_pairs, resolve_params
from pipec.ir import types
from pipec.ir.model import Param

DECLARED = {
    p.name: p
    for p in (
        Param(name="name", type="str", required=False, default="x"),
        Param(name="label", type="optional[str]", required=False, default="d"),
        Param(name="lr", type="float", required=False, default=0.1),
        Param(name="lrs", type="list[float]", required=False, default=[0.1]),
        Param(name="limit", type="optional[int]", required=False, default=3),
        Param(name="epochs", type="int"),
    )
}


def test_text_json_null_and_widening() -> None:
    given = parse_pairs(
        ["name=null", "label=null", "lr=1", "lrs=[1, 2.5]", "limit=null", "epochs=2"], DECLARED
    )
    values = resolve_params(DECLARED, given)
    assert values["name"] == "null"  # a plain str parameter takes the text as is
    assert values["label"] is None
    assert values["lr"] == 1.0 and isinstance(values["lr"], float)
    assert values["lrs"] == [1.0, 2.5] and all(isinstance(v, float) for v in values["lrs"])
    assert values["limit"] is None
    assert values["epochs"] == 2


def test_optional_str_keeps_other_text() -> None:
    given = parse_pairs(['label="null"', "epochs=1"], DECLARED)
    assert resolve_params(DECLARED, given)["label"] == '"null"'


def test_required_parameter_without_a_value() -> None:
    with pytest.raises(ParamError, match=r"'epochs' \(int\) is required"):
        resolve_params(DECLARED, {})


@pytest.mark.parametrize(
    ("pair", "message"),
    [("lr=fast", "expects float"), ("bogus=1", "unknown parameter"), ("lr", "name=value")],
)
def test_bad_values(pair: str, message: str) -> None:
    with pytest.raises(ParamError, match=message):
        resolve_params(DECLARED, parse_pairs([pair, "epochs=1"], DECLARED))


def test_coerce_leaves_bools_and_other_types_alone() -> None:
    assert types.coerce(True, "float") is True
    assert types.coerce(3, "int") == 3 and isinstance(types.coerce(3, "int"), int)
    assert types.coerce({"a": 1}, "dict[str, float]") == {"a": 1.0}
