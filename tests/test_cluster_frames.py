"""The node-to-node frame codec: round trips whatever JSON and bytes it carries, and refuses
anything that is not one of its frames (a forged or truncated frame on our channel)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sio_stream.cluster._frames import BINARY_KEY, FrameError, batch, decode, encode, unbatch

leaves = st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.binary(max_size=64)
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(st.lists(values, max_size=5))
def test_round_trip(args):
    header, decoded = decode(encode({"t": "emit", "ns": "/"}, args))
    assert header == {"t": "emit", "ns": "/"}
    assert decoded == args


def test_chunks_travel_as_binary_parts_not_json():
    chunk = bytes(range(256)) * 1024
    frame = encode({"t": "emit"}, ["id", chunk, "buffer"])
    assert chunk in frame  # as it is, not base64
    assert len(frame) < len(chunk) + 200


def _frame(header: bytes) -> bytes:
    return b"SS1" + len(header).to_bytes(4, "big") + header


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"nope",
        b"SS1",
        b"SS1\x00\x00\x00\x05{}",
        b"SS1\x00\x00\x00\x02[]",
        b"SS1\x00\x00\x00\x02{}",
        encode({"t": "x"}, [b"abc"])[:-1],
        _frame(b'{"args":[{"' + BINARY_KEY.encode() + b'":3}]}'),  # a part that is not there
        _frame(b'{"args":[{"' + BINARY_KEY.encode() + b'":true}]}'),
    ],
)
def test_forged_or_truncated_frames_are_refused(frame):
    with pytest.raises(FrameError):
        decode(frame)


def test_deep_nesting_is_refused():
    deep: list[object] = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(FrameError):
        encode({"t": "x"}, deep)


@given(st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=6))
def test_a_batch_carries_its_frames_in_order(payloads):
    frames = [encode({"t": "emit", "i": i}, [payload]) for i, payload in enumerate(payloads)]
    decoded = [decode(frame) for frame in unbatch(batch(frames))]
    assert decoded == [({"t": "emit", "i": i}, [payload]) for i, payload in enumerate(payloads)]


def test_a_single_frame_is_not_wrapped_and_a_truncated_batch_is_refused():
    frame = encode({"t": "hb"})
    assert batch([frame]) == frame
    assert [bytes(f) for f in unbatch(frame)] == [frame]
    with pytest.raises(FrameError, match="truncated"):
        unbatch(batch([frame, frame])[:-1])
