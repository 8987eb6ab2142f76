"""The direct YAML writer: whatever the data, YAML readers load back exactly that data."""

from __future__ import annotations

import math

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pipec.backends.common import yaml_text
from tests.conftest import GOLDEN

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

hostile = st.sampled_from(
    [
        "", " ", "yes", "No", "ON", "null", "~", "true", "1e5", "0x1F", "010", "1_000",
        "2001-12-14", "a:", "a:b", "a::", "--x", "-x", "---x", "- x", "http://x", "-1", "--1",
        "/", "//", "/a:", "a=b", "a=",
        ".inf", "=", "<<", "- a", "a: b", "#x", "&a", "*a", "!tag", "|", ">", "'", '"', "{}", "[]",
        "a\nb", "\t", "\u2028", "\x85", "\x7f", "\ufeff", "ünïcødé", "😀", "{{ $.inputs }}",
        "$(id)", "x\"; echo", "\\", "%YAML", "---", "...", "key:", "@at", "`tick`",
    ]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | hostile
)
json_data = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6) | hostile | st.just("k" * 1100), children, max_size=4),
    max_leaves=30,
)


def _same(a: object, b: object) -> bool:
    """Equality that also tells 1 from True and compares floats by value and type."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)  # type: ignore[attr-defined]
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    return a == b


@settings(max_examples=400, deadline=None)
@given(json_data)
def test_round_trip(data: object) -> None:
    text = yaml_text.dump(data)
    assert _same(yaml.load(text, Loader=_LOADER), data), text


@given(st.lists(json_data, min_size=1, max_size=3))
def test_round_trip_documents(documents: list[object]) -> None:
    loaded = list(yaml.load_all(yaml_text.dump_all(documents), Loader=_LOADER))
    assert _same(loaded, documents)


def test_keys_longer_than_yaml_allows_for_a_plain_key() -> None:
    # YAML reads `key:` only for keys of at most 1024 characters; a user's constant can hold one.
    long = "k" * 1500
    data = {
        long: {"a": [1, {long: "v"}]},
        "l": [{long: [1, 2], "z": 3}],
        "s": {long: "x\ny", "e": []},
    }
    text = yaml_text.dump(data)
    assert _same(yaml.load(text, Loader=_LOADER), data), text


def test_layout_matches_block_style() -> None:
    data = {"b": [{"x": 1, "z": [1, 2]}, [3, 4]], "a": {"k": "v", "e": {}, "l": []}}
    assert yaml_text.dump(data) == (
        "a:\n  e: {}\n  k: v\n  l: []\nb:\n- x: 1\n  z:\n  - 1\n  - 2\n- - 3\n  - 4\n"
    )


def test_floats_stay_floats() -> None:
    for value in (1e-05, 1e16, -0.0, 0.1, float("inf"), -float("inf")):
        assert yaml.load(yaml_text.dump(value), Loader=_LOADER) == value


def test_every_golden_yaml_loads_back_equal() -> None:
    files = sorted(GOLDEN.glob("*/*/*.yaml"))
    assert files
    for path in files:
        documents = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=_LOADER))
        assert yaml_text.dump_all(documents) == path.read_text(encoding="utf-8"), path
