"""What a sync download costs per chunk, counted (not timed): a threading server writes a
stream, a sync client reads it, and the test counts the work both sides do for it.

* python-socketio's generic dispatch (``_trigger_event``, the lifecycle hooks' wrapper, the
  handler lookup) for wire events without an ack: none, on either side (sio_stream.sync.
  _direct_events); before, once per chunk on the client and once per credit on the server;
* events the reader waits on: one for the whole stream, made once and cleared before each
  wait (sio_stream.sync._stream); before, a new one per wait, about one per chunk.

(Not the ``$stream-read`` packets: a reader faster than its writer finds the stream dry and
refills it at once, so their number depends on the machine's timing: 16 to 35 per 16 MiB seen.)
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from sio_stream import sync
from sio_stream.core import _wire as wire
from sio_stream.sync import _stream as sync_stream
from tests.sync_support import sync_client, sync_server

MiB = 1024 * 1024
CHUNK = 512 * 1024
SIZE = 16 * MiB
WIRE_EVENTS = frozenset({wire.READ, wire.WRITE, wire.END, wire.ERROR, wire.HELLO})


def count_triggers(sio: Any, counts: Counter[str], side: str) -> None:
    """Count ``sio``'s generic dispatch of wire events (python-socketio's ``_trigger_event``, as
    the lifecycle hooks wrapped it)."""
    trigger = sio._trigger_event

    def counted(event: str, *args: Any) -> Any:
        if event in WIRE_EVENTS:
            counts[f"{side} dispatched {event}"] += 1
        return trigger(event, *args)

    sio._trigger_event = counted


def count_sent(client: Any, counts: Counter[str]) -> None:
    """Count the client's packets by event name (every emit goes through ``_send_packet``)."""
    send_packet = client._send_packet

    def counted(packet: Any) -> Any:
        if isinstance(packet.data, list) and packet.data and isinstance(packet.data[0], str):
            counts[f"sent {packet.data[0]}"] += 1
        return send_packet(packet)

    client._send_packet = counted


def count_events(monkeypatch: pytest.MonkeyPatch, made: Counter[int]) -> None:
    """Count the events made for the sync API's waits, per thread (after ``ss()``, which sets
    where they come from)."""
    create = sync_stream._Events.create

    def counted() -> Any:
        made[threading.get_ident()] += 1
        return create()

    monkeypatch.setattr(sync_stream._Events, "create", counted)


def test_a_download_dispatches_no_wire_event_generically_and_waits_on_one_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reader_events: Counter[int] = Counter()
    blob = bytes(range(256)) * (SIZE // 256)
    counts: Counter[str] = Counter()
    with sync_server(max_http_buffer_size=4 * MiB) as (sio, url):
        server = sync.ss(sio)

        @server.on("get")
        def get(sid: str) -> sync.IOStream:
            stream = sync.create_stream()

            def write() -> None:
                for offset in range(0, SIZE, CHUNK):
                    stream.write(blob[offset : offset + CHUNK], timeout=60)
                stream.end(timeout=60)

            sio.start_background_task(write)
            return stream

        count_triggers(sio, counts, "server")
        with sync_client(url, reconnection=False) as client:
            streams = sync.ss(client)
            client.connect(url, transports=["websocket"], wait_timeout=30)
            count_triggers(client, counts, "client")
            count_sent(client, counts)
            stream = streams.call("get", timeout=60)
            count_events(monkeypatch, reader_events)
            got = bytearray()
            chunks = 0
            for chunk in stream:
                got += chunk
                chunks += 1
            reading_thread = threading.get_ident()
    assert bytes(got) == blob
    assert chunks >= SIZE // CHUNK  # whole chunks as they arrived (never coalesced on the way)
    # The wire events without an ack went straight to sio_stream's handlers: the client's
    # chunks and the server's credit (before: 32 and 16 dispatches).
    assert counts["client dispatched " + wire.WRITE] == 0, counts
    assert counts["server dispatched " + wire.READ] == 0, counts
    # One event for all of the reader's waits (before: one per wait, 20-32 here).
    assert reader_events[reading_thread] <= 1, reader_events


def test_an_event_with_an_ack_still_goes_through_python_socketio() -> None:
    """``$stream-end`` toward a sio_stream peer carries an ack: python-socketio's dispatch
    handles it (and sends the ack the core's answer makes)."""
    counts: Counter[str] = Counter()
    with sync_server() as (sio, url):
        server = sync.ss(sio)
        received: list[bytes] = []

        @server.on("put")
        def put(sid: str, stream: sync.IOStream) -> int:
            received.append(stream.read(timeout=60))
            return len(received[-1])

        count_triggers(sio, counts, "server")
        with sync_client(url, reconnection=False) as client:
            streams = sync.ss(client)
            client.connect(url, transports=["websocket"], wait_timeout=30)
            stream = sync.create_stream()
            assert streams.call("put", stream, writer=lambda: stream.end(b"x" * 1000), timeout=60) == 1000
    assert received == [b"x" * 1000]
    assert counts["server dispatched " + wire.END] == 1, counts
    assert counts["server dispatched " + wire.WRITE] == 0, counts  # no ack: straight to the core


def test_a_wire_handler_the_application_replaced_is_the_one_called() -> None:
    """An application that registers its own handler under a wire event's name after ``ss()``
    gets the events, as with python-socketio's own dispatch."""
    seen: list[tuple[Any, ...]] = []
    done = threading.Event()
    with sync_server() as (sio, url):
        sync.ss(sio)

        @sio.on(wire.ERROR)
        def own(sid: str, *args: Any) -> None:
            seen.append(args)
            done.set()

        with sync_client(url, reconnection=False) as client:
            client.connect(url, transports=["websocket"], wait_timeout=30)
            client.emit(wire.ERROR, ("no-such-id", "boom"))
            assert done.wait(60)
    assert seen == [("no-such-id", "boom")]
