"""Negotiated ``initial-credit`` (sio_stream.core._initial): a reader's offer in its hello lets
the peer's first byte stream send before any ``$stream-read``; the offer is taken once, bounded
by the process's share, and a placeholder that claims credit it was not offered fails its stream."""

from __future__ import annotations

from typing import Any

import pytest
import socketio

import sio_stream
from sio_stream import RemoteProtocolError
from sio_stream.core import _wire as wire
from sio_stream.core._budget import OFFER_SHARE, Budget
from sio_stream.core._config import FEATURE_INITIAL_CREDIT, INITIAL_KEY, CoreConfig
from sio_stream.core._core import Outgoing, ProtocolCore, StreamCore
from sio_stream.core._options import StreamOptions
from sio_stream.core._state import ReadState
from tests.corepair import CorePair, standing_still

CHUNK = 1024
OFFER = 8 * CHUNK


def config(offer: int = OFFER, process: Budget | None = None) -> CoreConfig:
    return CoreConfig(
        max_chunk=CHUNK,
        window=4,
        max_window=64 * CHUNK,
        initial_credit=offer,
        process_budget=process if process is not None else Budget(1 << 30),
    )


def reads(core: ProtocolCore) -> list[Outgoing]:
    """Everything queued on ``core`` (drained), so a test sees what it would send."""
    out = []
    while (item := core.next_outgoing()) is not None:
        out.append(item)
    return out


def test_the_first_stream_sends_its_offer_before_any_read_and_the_second_waits_for_credit():
    pair = CorePair(config(), config())
    writer = StreamCore(StreamOptions())
    placeholder = pair.a.attach(writer)
    assert placeholder[wire.PLACEHOLDER_CREDIT_KEY] == OFFER // CHUNK
    pair.a.queue(Outgoing(wire.STREAM, ("upload", placeholder)))
    pair.a.announce(writer)
    pair.a.write(writer, b"x" * (20 * CHUNK))
    sent = reads(pair.a)
    # The event, then one chunk per offered credit, with no $stream-read from the reader yet.
    assert [item.event for item in sent] == [wire.STREAM] + [wire.WRITE] * (OFFER // CHUNK)
    for item in sent:
        pair.wires[id(pair.a)].append(item)
    while pair.deliver(pair.a):
        pass
    reader = pair.decoded[id(pair.b)][0]
    # Primed: it reads, and holds the offer's bytes before its application asked for any.
    assert reader.error is None and reader.read_state is ReadState.READING
    assert pair.b.budget.held == OFFER and pair.b.budget.reserved == 0
    assert pair.b.budget.offered == 0  # taken: the process's share has it back

    second = StreamCore(StreamOptions())
    assert wire.PLACEHOLDER_CREDIT_KEY not in pair.a.attach(second)  # one offer, taken once
    assert second.credit.available == 0

    # The rest flows as on any stream: each chunk consumed gives its credit back.
    received = bytearray()
    pair.a.end(writer)
    pair.b.start_reading(reader)
    for _ in range(200):
        pair.flush()
        while reader.inbox:
            received += pair.b.take(reader, 1 << 20)
        if reader.readable_ended:
            break
    assert bytes(received) == b"x" * (20 * CHUNK)
    assert pair.b.budget.held == 0 and pair.b.budget.reserved == 0


def test_no_offer_toward_a_peer_without_the_feature_and_none_made_by_default():
    plain = config()
    plain.features = plain.features - {FEATURE_INITIAL_CREDIT}
    pair = CorePair(config(), plain)
    assert pair.a.initial_offer is None and pair.a.budget.offered == 0  # withdrawn
    assert wire.PLACEHOLDER_CREDIT_KEY not in pair.b.attach(StreamCore(StreamOptions()))
    assert INITIAL_KEY not in ProtocolCore(standing_still(CoreConfig())).hello().args[0]


@pytest.mark.parametrize(
    "credit",
    [OFFER // CHUNK + 1, 0, -1, True, 1.5, "8", [8]],
    ids=["beyond-the-offer", "zero", "negative", "bool", "float", "string", "list"],
)
def test_a_placeholder_claiming_credit_it_was_not_offered_fails_its_stream_only(credit: Any):
    pair = CorePair(config(), config())
    bad = pair.b.decode_placeholder("bad", None, credit)
    assert isinstance(bad.error, RemoteProtocolError) and "initial credit" in str(bad.error)
    errors = [item for item in reads(pair.b) if item.event == wire.ERROR]
    assert errors and errors[0].args[0] == "bad"
    assert pair.b.budget.reserved == 0 and pair.b.budget.held == 0
    assert not pair.b.closed
    # A refused claim takes nothing: the offer is still there for a good one.
    good = pair.b.decode_placeholder("good", None, OFFER // CHUNK)
    assert good.error is None and good.window is not None and good.window.outstanding == OFFER // CHUNK


def test_credit_claimed_twice_or_on_an_object_stream_or_never_offered_fails():
    pair = CorePair(config(), config())
    assert pair.b.decode_placeholder("one", None, 1).error is None
    again = pair.b.decode_placeholder("two", None, 1)
    assert isinstance(again.error, RemoteProtocolError)
    objects = CorePair(config(), config()).b.decode_placeholder("o", {"objectMode": True}, 1)
    assert isinstance(objects.error, RemoteProtocolError)
    never = CorePair(config(0), config(0)).b.decode_placeholder("n", None, 1)
    assert isinstance(never.error, RemoteProtocolError)


def test_offers_stay_within_the_process_share_and_go_back_when_a_connection_closes():
    process = Budget(OFFER_SHARE * OFFER * 2)  # room for two offers
    cores = [ProtocolCore(standing_still(config(process=process))) for _ in range(3)]
    offers = [INITIAL_KEY in core.hello().args[0] for core in cores]
    assert offers == [True, True, False]
    assert process.offered == 2 * OFFER and process.used == 0  # an offer holds nothing
    cores[0].connection_lost()
    assert process.offered == OFFER
    late = ProtocolCore(standing_still(config(process=process)))
    assert INITIAL_KEY in late.hello().args[0]


def test_no_offer_while_the_process_has_no_free_room_for_it():
    """Taken offers are reserved beyond the limit; a full process (say, streams nobody reads
    holding what offers brought) makes no new one, so connections that come and go one after
    the other cannot take it further."""
    process = Budget(OFFER_SHARE * OFFER * 2)
    assert process.reserve(process.limit - OFFER + 1)
    assert INITIAL_KEY not in ProtocolCore(standing_still(config(process=process))).hello().args[0]
    process.release(reserved=1)
    assert INITIAL_KEY in ProtocolCore(standing_still(config(process=process))).hello().args[0]


def test_a_taken_offer_is_counted_in_the_budget_even_beyond_its_limit():
    """The peer holds the credit already: the reservation is made whatever the budget says,
    and bounded by the offer."""
    process = Budget(OFFER_SHARE * OFFER)
    pair = CorePair(config(process=Budget(1 << 30)), config(process=process))
    assert process.reserve(process.limit)  # the process is full
    reader = pair.b.decode_placeholder("s", None, OFFER // CHUNK)
    assert reader.error is None
    assert pair.b.budget.reserved == OFFER and process.used == process.limit + OFFER


@pytest.mark.parametrize("sent", [True, False], ids=["lost-on-the-wire", "still-queued"])
def test_a_stream_whose_event_is_sent_again_after_a_resume_takes_its_initial_credit_again(sent: bool):
    """The drop loses the event (and the writes its initial credit let go): the peer never took
    the offer, the event carries its credit again, the writer holds it again, and every byte
    arrives once. Without that the reader waited for chunks its writer had no credit for."""
    from tests.test_session_events_core import resume
    from tests.test_session_resume_core import CHUNK as RESUME_CHUNK
    from tests.test_session_resume_core import config as resume_config
    from tests.test_session_resume_core import cut

    offer = 4 * RESUME_CHUNK
    pair = CorePair(resume_config(), resume_config(initial_credit=offer))
    stream = StreamCore(StreamOptions())
    placeholder = pair.a.attach(stream)
    assert placeholder[wire.PLACEHOLDER_CREDIT_KEY] == 4
    pair.a.queue(Outgoing(wire.STREAM, ("upload", placeholder)))
    pair.a.announce(stream)
    data = bytes(range(256)) * 3
    pair.a.write(stream, data)
    pair.a.end(stream)
    if sent:
        while pair.send(pair.a):
            pass
        assert [getattr(item, "event", None) for item in pair.wires[id(pair.a)]][:2] == [
            wire.STREAM,
            wire.WRITE,
        ]
    cut(pair)
    resume(pair)
    pair.flush()
    assert [name for name, _args in pair.events[id(pair.b)]] == ["upload"]
    (reader,) = pair.events[id(pair.b)][0][1]
    assert reader.error is None and reader.initial_credit == 4
    pair.b.start_reading(reader)
    got = pair.read_to_end(pair.b, reader, rounds=500)
    assert got == data and reader.error is None and stream.error is None


def test_ss_initial_credit_option_sets_or_turns_off_the_offer() -> None:
    offers = []
    for value in (0, 2 * 1024 * 1024):
        sio = socketio.AsyncServer(async_mode="aiohttp")
        offers.append(sio_stream.ss(sio, initial_credit=value)._config.initial_credit)
    assert offers == [0, 2 * 1024 * 1024]
    for bad in (-1, 1.5, True, "16M"):
        with pytest.raises(sio_stream.InvalidOptionError, match="initial_credit"):
            sio_stream.ss(socketio.AsyncServer(async_mode="aiohttp"), initial_credit=bad)


def test_the_sync_driver_takes_the_option_and_announces_the_feature() -> None:
    from sio_stream.sync import ss as sync_ss

    offers = [sync_ss(socketio.Server(), initial_credit=value)._config.initial_credit for value in (0, 2**24)]
    assert offers == [0, 2**24]
    assert FEATURE_INITIAL_CREDIT in sync_ss(socketio.Server(), initial_credit=2**24)._config.features
    for bad in (-1, 1.5, True, "16M"):
        with pytest.raises(sio_stream.InvalidOptionError, match="initial_credit"):
            sync_ss(socketio.Server(), initial_credit=bad)
