"""The answer format of rooms across nodes (sio_stream.aio._rooms), without any I/O."""

from __future__ import annotations

from typing import Any

import pytest

from sio_stream import ConnectionAbortedStreamError, HandlerError, StreamTimeoutError, create_stream
from sio_stream.aio._rooms import MemberCallback, RoomTarget, encode_answer, flatten_answers, parse_addressing


@pytest.mark.parametrize("value", [None, "one", ("two", 2), {"nested": [1, b"x"]}])
def test_an_ack_value_survives_the_trip(value: Any) -> None:
    target = RoomTarget("b", "room", None)
    target.answered(encode_answer("sid1", value))
    assert target.answers == {"sid1": value}


@pytest.mark.parametrize(
    "error", [HandlerError("no thanks"), StreamTimeoutError("slow"), ConnectionAbortedStreamError("gone")]
)
def test_an_error_arrives_as_the_same_kind_marked_remote(error: Exception) -> None:
    target = RoomTarget("b", "room", None)
    target.answered(encode_answer("sid1", error))
    (got,) = target.answers.values()
    assert type(got) is type(error) and str(got) == str(error) and got.remote


def test_streams_in_a_members_ack_are_destroyed_and_arrive_as_none() -> None:
    stream = create_stream()
    target = RoomTarget("b", "room", None)
    target.answered(encode_answer("sid1", ("x", stream)))
    assert target.answers == {"sid1": ("x", None)}
    assert stream.error is not None


@pytest.mark.parametrize(
    "entry", [None, [], ["sid"], ["sid", "ok", "not a list"], ["sid", "weird", "x"], [1, "ok", []]]
)
def test_malformed_entries_are_skipped(entry: Any) -> None:
    target = RoomTarget("b", "room", None)
    target.answered(entry)
    assert target.answers == {}


def test_an_emit_callback_hears_answers_and_handler_errors_not_departures() -> None:
    calls: list[tuple[Any, ...]] = []
    callback = MemberCallback(lambda *args: calls.append(args))
    target = RoomTarget("b", "room", None, on_answer=callback.member)
    target.answered(encode_answer("s1", ("a", 1)))
    target.answered(encode_answer("s2", None))
    target.answered(encode_answer("s3", ConnectionAbortedStreamError("gone")))
    target.answered(encode_answer("s4", HandlerError("no")))
    callback(target)  # the node's final answer: nobody's
    callback("local", "ack")  # a member of this node
    assert [c[:2] for c in calls] == [("s1", "a"), ("s2",), ("s4", calls[2][1]), ("local", "ack")]
    assert isinstance(calls[2][1], HandlerError)


def test_flatten_keeps_the_answers_that_came_before_a_node_failed() -> None:
    done, failed = RoomTarget("b", "room", None), RoomTarget("c", "room", None)
    done.answered(encode_answer("b1", "ok"))
    failed.answered(encode_answer("c1", "early"))
    result = flatten_answers({"a1": "local", done: None, failed: StreamTimeoutError("late")})
    assert result == {"a1": "local", "b1": "ok", "c1": "early"}


@pytest.mark.parametrize(
    "addressing",
    [
        None,
        {},
        {"to": 3, "call": 0},
        {"to": [], "call": 0},
        {"to": ["r", 1], "call": 0},
        {"to": "r", "call": True},
    ],
)
def test_bad_addressing_is_a_value_error(addressing: Any) -> None:
    with pytest.raises(ValueError):
        parse_addressing(addressing)


def test_addressing_round_trips() -> None:
    target = RoomTarget("b", ["r1", "sid"], "skip", max_lag=5, call=7)
    assert parse_addressing(target.addressing()) == (["r1", "sid"], "skip", 5, 7)
