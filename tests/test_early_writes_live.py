"""Over a real connection: a stream that took the server's initial credit, whose first writes the
server handles before the event announcing it (see sio_stream.core._early). The server's
``$stream`` handler is held back at the host boundary until a write was handled, as when the
answer carrying a stream crossed cluster nodes on another path than its writes, or a server's
handler threads ran the writes first. Before the fix the write handled first was dropped and
the upload still ended cleanly, one 512 KiB chunk short (524,293 bytes of 1,048,581; 5,767,173
of 6,291,461)."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from typing import Any

import pytest
import socketio

import sio_stream
from sio_stream import create_stream
from sio_stream.core import _wire as wire
from sio_stream.core._config import DEFAULT_MAX_CHUNK
from tests.support import start_server, wait_for

pytestmark = pytest.mark.anyio

OFFER = 4 * DEFAULT_MAX_CHUNK
TIMEOUT = 60  # generous: a guard against a hang, never a measure


def event_after_a_write(sio: socketio.AsyncServer, streams: sio_stream.StreamSocket) -> list[bool]:
    """Hold the server's ``$stream`` events until a ``$stream-write`` was handled (python-socketio
    runs each event in a task of its own, so the write's task runs meanwhile). Returns, for each
    write handled, whether the server knew its stream at the time."""
    handlers = sio.handlers["/"]
    on_stream, on_write = handlers[wire.STREAM], handlers[wire.WRITE]
    wrote = asyncio.Event()
    known: list[bool] = []

    def write(sid: str, *args: Any) -> Any:
        known.append(bool(args) and args[0] in streams._connections[sid].core.streams)
        result = on_write(sid, *args)
        wrote.set()
        return result

    async def stream_event(sid: str, *args: Any) -> Any:
        await asyncio.wait_for(wrote.wait(), TIMEOUT)
        result = on_stream(sid, *args)
        return await result if inspect.isawaitable(result) else result

    handlers[wire.STREAM], handlers[wire.WRITE] = stream_event, write
    return known


@pytest.mark.parametrize("size", [OFFER // 2 + 5, 3 * OFFER], ids=["within-the-offer", "beyond-the-offer"])
async def test_writes_handled_before_their_event_reach_the_handler_whole(size: int) -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    streams = sio_stream.ss(sio, initial_credit=OFFER)
    known = event_after_a_write(sio, streams)

    @streams.on("upload")
    async def upload(sid: str, stream: sio_stream.IOStream) -> Any:
        await sio.emit("reading", to=sid)  # the client ends its stream only now
        data = await stream.read()
        return len(data), hashlib.sha256(data).hexdigest()

    runner, url = await start_server(sio)
    client = socketio.AsyncClient()
    client_streams = sio_stream.ss(client)
    reading = asyncio.Event()
    client.on("reading", reading.set)
    try:
        await client.connect(url, transports=["websocket"])
        await wait_for(lambda: client_streams._connections[None].core.peer_offer is not None)
        data = bytes(range(256)) * (size // 256) + b"tail!"
        stream = create_stream()
        answer = asyncio.ensure_future(client_streams.call("upload", stream, timeout=TIMEOUT))
        await asyncio.wait_for(stream.write(data), TIMEOUT)
        await asyncio.wait_for(reading.wait(), TIMEOUT)
        await asyncio.wait_for(stream.end(), TIMEOUT)
        length, digest = await asyncio.wait_for(answer, TIMEOUT)
        assert known and known[0] is False  # the first write came before its event
        assert length == len(data) and digest == hashlib.sha256(data).hexdigest()
        connection = streams._connections[client.get_sid()]
        assert not connection.core.early.held and connection.core.early.bytes == 0
    finally:
        await client.disconnect()
        await runner.cleanup()
