"""One stream to many: emit to a room or a list of sids, over a real server and real clients."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio

from sio_stream import (
    ConnectionAbortedStreamError,
    LocalProtocolError,
    StreamBrokenError,
    create_stream,
    ss,
)
from sio_stream.core._core import DEFAULT_MAX_CHUNK, DEFAULT_WINDOW
from tests.support import start_server, wait_for

pytestmark = pytest.mark.anyio

DATA = os.urandom(3 * 1024 * 1024 + 123)
#: A client's read window in the max_lag case: the configured one (4 chunks of 512 KiB).
WINDOW = DEFAULT_WINDOW * DEFAULT_MAX_CHUNK


@dataclass
class Room:
    server: socketio.AsyncServer
    url: str
    clients: list[socketio.AsyncClient] = field(default_factory=list)
    sids: list[str] = field(default_factory=list)
    #: What each client received, by its sid on the server.
    received: dict[str, asyncio.Future[bytes]] = field(default_factory=dict)
    #: Clients that take a stream but do not read it until ``wake`` is set.
    stalled: set[str] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    #: Bytes each client has read so far, by its sid on the server.
    read: dict[str, int] = field(default_factory=dict)

    async def join(self, count: int, *, stall: int = 0, **options: Any) -> None:
        """``count`` clients join the lobby, the first ``stall`` of them stalled; ``options`` go
        to each client's ``ss()``."""
        for i in range(count):
            client = socketio.AsyncClient()
            streams = ss(client, **options)
            future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            stalls = i < stall
            sid_box: list[str] = []

            @streams.on("file")
            async def on_file(stream: Any, meta: Any, future=future, stalls=stalls, sid_box=sid_box) -> str:
                if stalls:
                    await self.wake.wait()
                parts = []
                try:
                    async for chunk in stream:
                        parts.append(bytes(chunk))
                        self.read[sid_box[0]] += len(chunk)
                except StreamBrokenError as exc:
                    future.set_exception(exc)
                    raise
                data = b"".join(parts)
                future.set_result(data)
                return hashlib.sha256(data).hexdigest()

            await client.connect(self.url, transports=["websocket"])
            sid = client.get_sid()
            assert sid is not None
            sid_box.append(sid)
            self.read[sid] = 0
            self.clients.append(client)
            self.sids.append(sid)
            self.received[sid] = future
            if stalls:
                self.stalled.add(sid)
        await wait_for(
            lambda: len(list(self.server.manager.get_participants("/", "lobby"))) == len(self.sids)
        )


@pytest.fixture
async def room() -> AsyncIterator[Room]:
    server = socketio.AsyncServer(async_mode="aiohttp")
    ss(server)

    @server.event
    async def connect(sid: str, environ: Any, auth: Any) -> None:
        await server.enter_room(sid, "lobby")

    runner, url = await start_server(server)
    result = Room(server, url)
    try:
        yield result
    finally:
        for client in result.clients:
            if client.connected:
                await client.disconnect()
        await server.shutdown()
        await runner.cleanup()
        gc.collect()


async def feed(stream: Any, data: bytes = DATA) -> None:
    for i in range(0, len(data), 100_000):
        await stream.write(data[i : i + 100_000])
    await stream.end()


async def test_a_stream_to_a_room_reaches_everyone_intact(room):
    await room.join(5)
    streams = ss(room.server)
    stream = create_stream()
    reply = asyncio.create_task(streams.call("file", stream, {"name": "a"}, to="lobby"))
    await feed(stream)
    acks = await asyncio.wait_for(reply, 60)
    digest = hashlib.sha256(DATA).hexdigest()
    assert acks == {sid: digest for sid in room.sids}
    for sid in room.sids:
        assert await room.received[sid] == DATA
    await wait_for(lambda: streams.stream_count() == 0)


async def test_skip_sid_and_lists(room):
    await room.join(3)
    streams = ss(room.server)
    stream = create_stream()
    acked: list[str] = []
    streams.emit(
        "file",
        stream,
        {},
        to=["lobby"],
        skip_sid=room.sids[0],
        callback=lambda sid, digest: acked.append(sid),
    )
    await feed(stream)
    await wait_for(lambda: len(acked) == 2)
    assert sorted(acked) == sorted(room.sids[1:])
    assert not room.received[room.sids[0]].done()


async def test_an_empty_room_is_refused_and_the_stream_stays_usable(room):
    await room.join(1)
    streams = ss(room.server)
    stream = create_stream()
    with pytest.raises(LocalProtocolError, match=r"neither a client connected .* nor a room"):
        streams.emit("file", stream, {}, to="nobody-here")
    # The stream was not sent: it can still go to someone.
    reply = asyncio.create_task(streams.call("file", stream, {}, to=room.sids[0]))
    await feed(stream)
    assert await asyncio.wait_for(reply, 60) == hashlib.sha256(DATA).hexdigest()


async def test_a_recipient_that_stops_reading_is_dropped_with_max_lag(room):
    # Each client's window is its configured one, fixed: neither the initial credit a client
    # offers (16 MiB, more than is sent: the stalled one would take it all and never lag) nor
    # a window grown by the tuner, whose call depends on the round trips it timed (on busy
    # cores the first reader's grew, the pace went with it, and a reader that read fell behind
    # by 3,267,232 bytes, 4 runs of 4).
    await room.join(4, stall=1, initial_credit=0, max_window=WINDOW)
    streams = ss(room.server)
    stream = create_stream()
    # The stalled client takes its read window (2 MiB) and no more: with 9 MiB sent, what waits
    # for it passes max_lag, while the readers stay well within it: the writer keeps within
    # 1 MiB of them (under max_lag the group moves at its fastest member's pace, and a reader
    # preempted on a loaded core would count as a laggard too).
    data = DATA * 3
    reply = asyncio.create_task(streams.call("file", stream, {}, to="lobby", max_lag=3 * 1024 * 1024))
    (stalled,) = room.stalled
    readers = [sid for sid in room.sids if sid != stalled]
    for offset in range(0, len(data), 200_000):  # the laggard does not hold the others back
        await wait_for(lambda o=offset: min(room.read[s] for s in readers) >= o - 1024 * 1024, 60)
        await asyncio.wait_for(stream.write(data[offset : offset + 200_000]), 60)
    await asyncio.wait_for(stream.end(), 60)
    for sid in room.sids:
        if sid != stalled:
            assert await room.received[sid] == data
    room.wake.set()
    acks = await asyncio.wait_for(reply, 60)
    digest = hashlib.sha256(data).hexdigest()
    assert {sid: acks[sid] for sid in room.sids if sid != stalled} == {
        sid: digest for sid in room.sids if sid != stalled
    }
    # The laggard's stream failed with the reason, and its handler's failure came back.
    assert "fell behind by" in str(acks[stalled])
    with pytest.raises(StreamBrokenError, match="fell behind by"):
        await room.received[stalled]


async def test_a_recipient_that_leaves_does_not_stop_the_others(room):
    await room.join(3)
    streams = ss(room.server)
    stream = create_stream()
    reply = asyncio.create_task(streams.call("file", stream, {}, to="lobby"))
    await stream.write(DATA[:500_000])
    await room.clients[0].disconnect()
    await feed(stream, DATA[500_000:])
    acks = await asyncio.wait_for(reply, 60)
    assert isinstance(acks[room.sids[0]], ConnectionAbortedStreamError)
    rest = DATA[500_000:]
    for sid in room.sids[1:]:
        assert await room.received[sid] == DATA[:500_000] + rest


async def test_object_streams_to_a_room(room):
    await room.join(2)
    streams = ss(room.server)

    got: dict[str, list[Any]] = {}
    for client, sid in zip(room.clients, room.sids, strict=True):

        @ss(client).on("ticks")
        async def ticks(stream: Any, sid=sid) -> int:
            got[sid] = [value async for value in stream]
            return len(got[sid])

    stream = create_stream(object_mode=True)
    reply = asyncio.create_task(streams.call("ticks", stream, to="lobby"))
    for i in range(300):
        await stream.write({"tick": i})
    await stream.end()
    assert await asyncio.wait_for(reply, 60) == {sid: 300 for sid in room.sids}
    assert all(values == [{"tick": i} for i in range(300)] for values in got.values())


async def test_a_room_whose_every_client_is_skipped_is_refused(room):
    await room.join(2)
    with pytest.raises(LocalProtocolError, match="no client in 'lobby' is connected"):
        ss(room.server).emit("file", create_stream(), {}, to="lobby", skip_sid=room.sids)
