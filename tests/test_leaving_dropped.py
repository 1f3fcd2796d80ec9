"""A client's deliberate ``disconnect()`` that waits for the server's hello (streams open, no
hello yet), or for the server's answer to its close, ends its wait when the connection goes
meanwhile: neither can come on it.

The server here is plain python-socketio (no sio_stream: it never sends a hello) and drops the
client while the client's disconnect waits. The wait's bound is raised so that a wait nobody
ends fails the test by its own timeout, not by a clock.
"""

from __future__ import annotations

import asyncio

import pytest
import socketio

import sio_stream
import sio_stream.aio._socket as aio_socket
from benchmarks.link import Link
from sio_stream import create_stream
from tests.support import start_server, wait_for

pytestmark = pytest.mark.anyio

TIMEOUT = 60.0


async def test_a_drop_ends_a_disconnect_waiting_for_the_hello(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aio_socket, "LEAVING_TIMEOUT", 3600.0)
    server = socketio.AsyncServer(async_mode="aiohttp")
    events: list[str] = []
    sids: list[str] = []

    @server.on("*")
    async def any_event(event: str, sid: str, *_args: object) -> None:
        events.append(event)

    @server.on("connect")
    async def connect(sid: str, _environ: object) -> None:
        sids.append(sid)

    runner, url = await start_server(server)
    client = socketio.AsyncClient(reconnection=False)
    streams = sio_stream.ss(client, resume_timeout=30)
    try:
        await client.connect(url, transports=["websocket"], wait_timeout=30)
        up = create_stream()
        await streams.emit("upload", up)
        await wait_for(lambda: "$stream" in events, TIMEOUT)  # the server has it: a stream is open
        connection = streams._connections[None]
        assert connection.streams and not connection.core.peer_known

        leaving = asyncio.ensure_future(client.disconnect())
        await wait_for(lambda: connection.leaving is not None, TIMEOUT)  # it waits for a hello
        await server.disconnect(sids[0])

        await asyncio.wait_for(leaving, TIMEOUT)
        assert not client.connected
    finally:
        if client.connected:
            await client.disconnect()
        await runner.cleanup()


async def test_a_drop_ends_a_disconnect_waiting_for_the_answer_to_its_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sio_stream server whose client's close never reaches it (the link holds it) and which
    drops the client meanwhile: the disconnect goes on at the drop. (The suite's resume tests
    paid the whole bound at each teardown, 10 s, until the drop ended it.)"""
    monkeypatch.setattr(aio_socket, "LEAVING_TIMEOUT", 3600.0)
    server = socketio.AsyncServer(async_mode="aiohttp")
    server_streams = sio_stream.ss(server, resume_timeout=30)
    sids: list[str] = []

    @server.on("connect")
    async def connect(sid: str, _environ: object) -> None:
        sids.append(sid)

    @server_streams.on("upload")
    async def upload(sid: str, stream: sio_stream.IOStream) -> None:
        await stream.read()

    runner, url = await start_server(server)
    client = socketio.AsyncClient(reconnection=False)
    streams = sio_stream.ss(client, resume_timeout=30)
    try:
        async with Link(int(url.rsplit(":", 1)[1])) as link:
            await client.connect(link.url, transports=["websocket"], wait_timeout=30)
            await streams.emit("upload", create_stream())
            connection = streams._connections[None]
            await wait_for(
                lambda: connection.token is not None and server_streams.stream_count() == 1, TIMEOUT
            )
            link.set_delay(up=3600.0)  # what the client sends from now on never arrives

            leaving = asyncio.ensure_future(client.disconnect())
            await wait_for(lambda: connection.closing is not None, TIMEOUT)  # its close is sent
            await server.disconnect(sids[0])

            await asyncio.wait_for(leaving, TIMEOUT)
            assert not client.connected
    finally:
        if client.connected:
            await client.disconnect()
        await runner.cleanup()
