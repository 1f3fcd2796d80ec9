"""Negotiated ``resume``: bad resume input gets a typed refusal and leaves the session's data
untouched. At the core: offsets beyond what was sent, malformed entries, event counts and
answer lists that do not fit. End to end (an AsyncServer on 127.0.0.1 and bare python-socketio
clients speaking the hello): a token of an expired session, another client's live token, and
two connections resuming one session at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sio_stream import ConnectionAbortedStreamError, RemoteProtocolError, create_stream
from sio_stream.core import _wire as wire
from sio_stream.core._core import FEATURE_RESUME, OUR_FEATURES, Outgoing, StreamCore
from sio_stream.core._options import StreamOptions
from tests.corepair import CorePair, take_all
from tests.support import wait_for
from tests.test_session_resume import hello_answer, session
from tests.test_session_resume_core import config, cut


def two_streams(pair: CorePair) -> tuple[StreamCore, StreamCore, StreamCore, StreamCore]:
    first, second = StreamCore(StreamOptions()), StreamCore(StreamOptions())
    first_peer = pair.open_stream(pair.a, first)
    second_peer = pair.open_stream(pair.a, second)
    for peer in (first_peer, second_peer):
        pair.b.start_reading(peer)
    pair.flush()
    for stream in (first, second):
        pair.a.write(stream, b"x" * 20)
    pair.flush()
    return first, first_peer, second, second_peer


@pytest.mark.parametrize(
    "entry",
    [[10**9, 0, 0, 0], [-1, 0, 0, 0], [True, 0, 0, 0], ["20", 0, 0, 0], [20, 0], None, {"a": 1}],
)
def test_a_bad_entry_fails_only_its_stream_and_the_rest_resumes(entry: Any) -> None:
    pair = CorePair(config(), config())
    first, _first_peer, second, second_peer = two_streams(pair)
    got_before = b"".join(take_all(pair.b, second_peer))
    cut(pair)
    client_state = pair.a.resume_state()  # a is the writer here; b reports what it received
    server_state = pair.b.resume_state()
    server_state[first.id] = entry  # beyond what was sent, or not an entry at all
    pair.b.apply_resume(client_state)
    pair.a.apply_resume(server_state)
    pair.flush()
    if entry == [10**9, 0, 0, 0]:
        assert isinstance(first.error, RemoteProtocolError)  # offsets beyond what was sent
    else:
        assert isinstance(first.error, ConnectionAbortedStreamError)
    # The other stream carries on, untouched.
    pair.a.write(second, b"y" * 20)
    pair.a.end(second)
    for _ in range(50):
        pair.flush()
        got_before += b"".join(take_all(pair.b, second_peer))
        if second_peer.readable_ended:
            break
    assert got_before == b"x" * 20 + b"y" * 20 and second.error is None


@pytest.mark.parametrize("events", [10**6, -3, "2", True, 1.5])
def test_an_event_count_that_does_not_fit_replays_nothing(events: Any) -> None:
    pair = CorePair(config(), config())
    pair.a.queue(Outgoing(wire.STREAM, ("note", 1)))
    pair.send(pair.a)  # lost in the cut
    cut(pair)
    pair.b.apply_resume(pair.a.resume_state(), pair.a.events_received)
    pair.a.apply_resume(pair.b.resume_state(), events)
    pair.flush()
    assert pair.events[id(pair.b)] == []  # nothing sent on a count that makes no sense
    assert len(pair.a.sent_events) <= 1  # still bounded


def test_a_flood_of_awaited_answers_gets_at_most_the_cap() -> None:
    pair = CorePair(config(), config())
    for _ in range(5):
        pair.a.queue(Outgoing(wire.STREAM, ("note",)))
    pair.flush()
    cut(pair)
    pair.a.apply_resume(pair.b.resume_state(), pair.b.events_received)
    pair.b.answers.cap = 3
    pair.b.apply_resume(pair.a.resume_state(), pair.a.events_received, [*range(1, 10**5), "x", -1])
    sent = 0
    while pair.b.next_outgoing() is not None:
        sent += 1
    assert sent <= 3


def request(token: str, stream_id: str) -> dict[str, Any]:
    features = sorted(OUR_FEATURES | {FEATURE_RESUME})
    return {
        "version": 1,
        "features": features,
        "resume": {"token": token, "streams": {stream_id: [0, 0, 0, 0]}, "events": 0, "awaiting": []},
    }


def received(setup: Any, stream_id: str) -> int:
    connection = setup.streams._connections.get(setup.sids[0])
    stream = connection.core.streams.get(stream_id) if connection is not None else None
    return -1 if stream is None else int(stream.received_units)


@pytest.mark.anyio
async def test_an_expired_sessions_token_is_refused() -> None:
    async with session(server_timeout=0.3, reconnection=False) as setup:
        stream = create_stream()
        await setup.client_streams.emit("upload", stream)
        await stream.write(b"x" * 100)
        await wait_for(lambda: setup.streams.stream_count() == 1)
        token = setup.client_streams._connections[None].token
        assert token is not None
        setup.link.cut()
        await wait_for(lambda: setup.uploads, 10)  # expired: the server's copy failed
        answer = await hello_answer(setup.url, request(token, stream.id))
        assert answer["resume"]["refused"] == "unknown session" and "streams" not in answer["resume"]


@pytest.mark.anyio
async def test_two_connections_resuming_one_session_at_once_one_is_refused() -> None:
    async with session(reconnection=False) as setup:
        stream = create_stream()
        await setup.client_streams.emit("upload", stream)
        await stream.write(b"x" * 100)
        await wait_for(lambda: received(setup, stream.id) == 100)
        token = setup.client_streams._connections[None].token
        assert token is not None
        setup.link.cut()  # the client does not come back: the session waits, suspended
        await wait_for(lambda: setup.streams.statistics().suspended == 1)
        answers = await asyncio.gather(
            hello_answer(setup.url, request(token, stream.id)),
            hello_answer(setup.url, request(token, stream.id)),
        )
        outcomes = sorted("streams" in a["resume"] for a in answers)
        assert outcomes == [False, True]  # exactly one got the session
        refused = next(a for a in answers if "streams" not in a["resume"])
        assert refused["resume"]["refused"] in ("session in use", "unknown session")
        # The winner's state is the session's: 100 bytes received, nothing else changed.
        winner = next(a for a in answers if "streams" in a["resume"])
        assert winner["resume"]["streams"][stream.id][0] == 100
