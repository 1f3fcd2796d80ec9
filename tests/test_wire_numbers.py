"""The hello's announced numbers (``initial-credit`` offer, ``credit-limit``) share one check:
whole numbers of at least 1, anything else makes the whole announcement ignored."""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given

from sio_stream.core._initial import InitialCredit
from sio_stream.core._window import CreditLimit
from sio_stream.core._wire import positive_ints

BAD = [0, -1, True, False, 1.0, "2", None, [3]]


@given(st.integers(min_value=1), st.integers(min_value=1))
def test_whole_positive_numbers_are_taken(first: int, second: int) -> None:
    assert positive_ints({"a": first, "b": second, "extra": "x"}, "a", "b") == (first, second)
    assert InitialCredit.from_wire({"credits": first, "size": second}) == InitialCredit(first, second)
    assert CreditLimit.from_wire({"bytes": first, "objects": second}) == CreditLimit(first, second)


@pytest.mark.parametrize("bad", BAD)
def test_one_bad_number_voids_the_announcement(bad: Any) -> None:
    assert positive_ints({"a": 5, "b": bad}, "a", "b") is None
    assert InitialCredit.from_wire({"credits": bad, "size": 1024}) is None
    assert InitialCredit.from_wire({"credits": 4, "size": bad}) is None
    assert CreditLimit.from_wire({"bytes": bad, "objects": 8}) is None
    assert CreditLimit.from_wire({"bytes": 1 << 20, "objects": bad}) is None


@pytest.mark.parametrize("value", [None, [], [4, 1024], "credits", 7, {"credits": 4}, {"size": 1}])
def test_not_an_object_or_a_missing_key(value: Any) -> None:
    assert InitialCredit.from_wire(value) is None
    assert CreditLimit.from_wire(value) is None
    assert positive_ints(value, "credits", "size") is None
