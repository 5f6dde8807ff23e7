"""The ``--json`` writer prints exactly what ``json.dumps(doc, indent=2, ensure_ascii=False)`` prints."""

from __future__ import annotations

import enum
import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from actantctl.indented_json import dumps_indented

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()  # any code point: ensure_ascii=False keeps them, control characters are escaped
)
DOCS = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5), max_leaves=40
)


def reference(doc: Any) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False)


@given(DOCS)
def test_same_text_as_json_dumps(doc: Any) -> None:
    assert dumps_indented(doc) == reference(doc)


class Level(enum.IntEnum):
    HIGH = 3


def test_edge_values_and_fallbacks() -> None:
    docs: list[Any] = [
        {},
        [],
        {"a": {}, "b": [], "c": [[]], "d": [{}]},
        {"f": [0.1, -0.0, 1e300, math.inf, -math.inf, math.nan], "i": [0, -1, 2**70]},
        {"s": 'é \u2028 \x00 " \\ \n 😀', "é": True},
        ("tuple", 1),  # falls back: json writes tuples as lists
        {1: "non-string key", None: 2},  # falls back: json converts keys
        {"enum": Level.HIGH},  # falls back: an int subclass
    ]
    for doc in docs:
        assert dumps_indented(doc) == reference(doc)


def test_a_cycle_raises_as_json_does() -> None:
    doc: list[Any] = []
    doc.append(doc)
    try:
        reference(doc)
    except ValueError as exc:
        expected = str(exc)
    try:
        dumps_indented(doc)
    except ValueError as exc:
        assert str(exc) == expected
    else:
        raise AssertionError("no error for a cyclic document")
