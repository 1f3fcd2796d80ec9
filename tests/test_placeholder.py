"""Placeholder encode/decode over random nested JSON with streams at any depth."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from sio_stream import InvalidOptionError
from sio_stream.core import _placeholder as placeholders
from sio_stream.core._options import StreamOptions


class FakeStream:
    """Stands in for a stream: the walk only asks "is this a stream?"."""

    def __init__(self, n: int) -> None:
        self.id = f"id-{n}"
        self.options = StreamOptions.create(object_mode=n % 2 == 0) if n % 3 else StreamOptions()


counter = iter(range(10**9))
streams = st.builds(lambda: FakeStream(next(counter)))
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
trees = st.recursive(
    scalars | streams,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=6).filter(lambda k: k != "$stream"), inner, max_size=4)
    ),
    max_leaves=25,
)


def to_placeholder(obj):
    if isinstance(obj, FakeStream):
        placeholder = {"$stream": obj.id}
        wire = obj.options.to_wire()
        if wire is not None:
            placeholder["options"] = wire
        return placeholder
    return None


def collect(tree, out):
    if isinstance(tree, FakeStream):
        out.append(tree)
    elif isinstance(tree, list):
        for item in tree:
            collect(item, out)
    elif isinstance(tree, dict):
        for item in tree.values():
            collect(item, out)
    return out


@settings(max_examples=300, deadline=None)
@given(tree=trees)
def test_round_trip_restores_every_stream_in_place(tree):
    encoded = placeholders.encode(tree, to_placeholder)
    assert not collect(encoded, []), "no stream object may remain in the encoded tree"
    originals = {s.id: s for s in collect(tree, [])}
    seen = []

    def from_placeholder(stream_id, options):
        seen.append(stream_id)
        original = originals[stream_id]
        assert StreamOptions.from_wire(options).to_wire() == original.options.to_wire()
        return original

    decoded = placeholders.decode(encoded, from_placeholder)
    assert decoded == tree
    assert sorted(seen) == sorted(s.id for s in collect(tree, []))


def test_any_truthy_stream_key_is_a_placeholder_and_falsy_is_not():
    made = []
    value = [{"$stream": "x"}, {"$stream": ""}, {"$stream": 0, "a": 1}]
    out = placeholders.decode(value, lambda i, o: made.append(i) or f"S{i}")
    assert out == ["Sx", {"$stream": ""}, {"$stream": 0, "a": 1}]
    assert made == ["x"]


def test_unknown_option_keys_survive_a_round_trip():
    options = StreamOptions.from_wire({"highWaterMark": 10, "futureKey": [1, 2]})
    assert options.high_water_mark == 10
    assert options.to_wire() == {"highWaterMark": 10, "futureKey": [1, 2]}


@pytest.mark.parametrize(
    "wire",
    [{"highWaterMark": "big"}, {"highWaterMark": -1}, {"objectMode": "yes"}, {"encoding": 5}, [1, 2]],
)
def test_bad_wire_options_raise_a_typed_error(wire):
    with pytest.raises(InvalidOptionError):
        StreamOptions.from_wire(wire)


def test_huge_high_water_mark_is_clamped_for_our_buffers():
    options = StreamOptions.from_wire({"highWaterMark": 10**15})
    assert options.effective_high_water_mark == 16 * 1024 * 1024
    assert options.to_wire() == {"highWaterMark": 10**15}


def test_nesting_beyond_the_limit_is_refused():
    tree: list = []
    for _ in range(placeholders.MAX_DEPTH + 5):
        tree = [tree]
    with pytest.raises(InvalidOptionError):
        placeholders.decode(tree, lambda i, o: None)
