"""Connection lifetime: user handlers and namespaces keep working, disconnects leave nothing behind."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest
import socketio

import sio_stream
from sio_stream import ConnectionAbortedStreamError, LocalProtocolError, create_stream
from tests.support import start_server, wait_for

pytestmark = pytest.mark.anyio


def test_async_handlers_false_is_refused_with_a_clear_message():
    server = socketio.AsyncServer(async_mode="aiohttp", async_handlers=False)
    with pytest.raises(LocalProtocolError, match="async_handlers"):
        sio_stream.ss(server)


def test_ss_returns_one_instance_per_socket_and_namespace():
    server = socketio.AsyncServer(async_mode="aiohttp")
    assert sio_stream.ss(server) is sio_stream.ss(server, "/")
    assert sio_stream.ss(server, "/files") is not sio_stream.ss(server)
    with pytest.raises(sio_stream.InvalidOptionError):
        sio_stream.ss(server, window=3)
    with pytest.raises(sio_stream.InvalidOptionError):
        sio_stream.ss(server, object_window=3)
    assert sio_stream.ss(server, "/small", object_window=4)._config.object_window == 4
    with pytest.raises(sio_stream.InvalidOptionError):
        sio_stream.ss(server, "/zero", object_window=0)
    with pytest.raises(TypeError):
        sio_stream.ss(object())


@pytest.mark.parametrize("order", ["user-first", "streams-first"])
async def test_user_connect_and_disconnect_handlers_keep_working(order):
    server = socketio.AsyncServer(async_mode="aiohttp")
    client = socketio.AsyncClient()
    calls: list[str] = []

    def register_user() -> None:
        @server.on("connect")
        async def connect(sid, environ, auth=None):
            calls.append("server connect")

        @server.on("disconnect")
        async def disconnect(sid, reason=None):
            calls.append("server disconnect")

        @client.on("connect")
        async def client_connect():
            calls.append("client connect")

        @client.on("disconnect")
        async def client_disconnect(reason=None):
            calls.append("client disconnect")

    if order == "user-first":
        register_user()
        streams, client_streams = sio_stream.ss(server), sio_stream.ss(client)
    else:
        streams, client_streams = sio_stream.ss(server), sio_stream.ss(client)
        register_user()

    @streams.on("upload")
    async def upload(sid, stream):
        await stream.read()

    runner, url = await start_server(server)
    try:
        await client.connect(url, transports=["websocket"])
        await wait_for(lambda: "server connect" in calls and "client connect" in calls)
        stream = create_stream()
        await client_streams.emit("upload", stream)
        await stream.write(b"partial")
        await wait_for(lambda: streams.stream_count() == 1)
        await client.disconnect()
        await wait_for(lambda: "server disconnect" in calls and "client disconnect" in calls)
        with pytest.raises(ConnectionAbortedStreamError):
            await stream.end()
        await wait_for(lambda: streams.stream_count() == 0)
    finally:
        await server.shutdown()
        await runner.cleanup()


@pytest.mark.parametrize("order", ["namespace-first", "streams-first"])
async def test_class_based_namespaces_keep_working(order):
    server = socketio.AsyncServer(async_mode="aiohttp")
    calls: list[str] = []

    class Chat(socketio.AsyncNamespace):
        async def on_connect(self, sid, environ, auth=None):
            calls.append("connect")

        async def on_disconnect(self, sid, reason=None):
            calls.append("disconnect")

        async def on_hello(self, sid, name):
            return f"hello {name}"

    if order == "namespace-first":
        server.register_namespace(Chat("/chat"))
        streams = sio_stream.ss(server, "/chat")
    else:
        streams = sio_stream.ss(server, "/chat")
        server.register_namespace(Chat("/chat"))

    @streams.on("size")
    async def size(sid, stream):
        return len(await stream.read())

    runner, url = await start_server(server)
    client = socketio.AsyncClient()
    client_streams = sio_stream.ss(client, "/chat")
    try:
        await client.connect(url, transports=["websocket"], namespaces=["/chat"])
        await wait_for(lambda: "connect" in calls)
        assert await client.call("hello", "you", namespace="/chat") == "hello you"
        stream = create_stream()
        call = asyncio.ensure_future(client_streams.call("size", stream))
        await stream.end(b"four")
        assert await call == 4
        await client.disconnect()
        await wait_for(lambda: "disconnect" in calls)
    finally:
        await server.shutdown()
        await runner.cleanup()


# A transport dropped under the client is what session resume waits for (resume_timeout);
# without it both ends fail at once (tests/test_session_resume.py covers the wait).
@pytest.mark.parametrize("pair", [{"resume_timeout": 0}], indirect=True)
async def test_disconnect_mid_transfer_fails_both_ends_and_leaves_nothing(pair):
    server_side: list[weakref.ref] = []
    server_errors: list[BaseException] = []

    @pair.server_streams.on("upload")
    async def upload(sid, stream):
        server_side.append(weakref.ref(stream))
        try:
            await stream.read()
        except Exception as exc:
            server_errors.append(exc)

    client_side: list[weakref.ref] = []

    async def transfer() -> None:
        stream = create_stream()
        client_side.append(weakref.ref(stream))
        await pair.client_streams.emit("upload", stream)
        while True:
            await stream.write(b"x" * 100_000)

    writers = [asyncio.ensure_future(transfer()) for _ in range(3)]
    await wait_for(lambda: pair.server_streams.stream_count() == 3)
    # Drop the transport under the client, as a network failure would.
    await pair.client.eio.disconnect(abort=True)
    for writer in writers:
        with pytest.raises(ConnectionAbortedStreamError, match="Connection aborted"):
            await asyncio.wait_for(writer, 20)
    await wait_for(lambda: len(server_errors) == 3)
    assert all(isinstance(e, ConnectionAbortedStreamError) for e in server_errors)
    await wait_for(lambda: pair.server_streams.stream_count() == 0)
    await wait_for(lambda: pair.server_streams.connection_count == 0)
    assert pair.client_streams.stream_count() == 0
    del writers, writer
    server_errors.clear()
    gc.collect()
    assert [ref() for ref in server_side + client_side] == [None] * 6
    tasks = [t for t in asyncio.all_tasks() if "sio_stream" in t.get_name()]
    assert tasks == []


async def test_emit_to_an_unknown_sid_fails_at_once(pair):
    with pytest.raises(LocalProtocolError, match="neither a client connected to namespace"):
        await pair.server_streams.emit("x", create_stream(), to="no-such-sid")
    with pytest.raises(LocalProtocolError, match="to=sid"):
        await pair.server_streams.emit("x", create_stream())


async def test_client_reconnects_and_new_streams_work(pair):
    @pair.server_streams.on("size")
    async def size(sid, stream):
        return len(await stream.read())

    await pair.client.disconnect()
    await pair.client.connect(pair.url, transports=["websocket"])
    stream = create_stream()
    call = asyncio.ensure_future(pair.client_streams.call("size", stream))
    await stream.end(b"again")
    assert await call == 5


async def test_streams_returned_to_an_event_without_ack_are_released():
    server = socketio.AsyncServer(async_mode="aiohttp")
    streams = sio_stream.ss(server, claim_timeout=0.5)
    returned: list[sio_stream.IOStream] = []

    @streams.on("make")
    async def make(sid):
        stream = create_stream()
        returned.append(stream)
        return stream

    runner, url = await start_server(server)
    client = socketio.AsyncClient()
    sio_stream.ss(client)
    try:
        await client.connect(url, transports=["websocket"])
        await sio_stream.ss(client).emit("make")  # no callback: the stream never reaches us
        await wait_for(lambda: bool(returned))
        with pytest.raises(sio_stream.StreamBrokenError, match="never used by the peer"):
            while True:
                await returned[0].write(b"x" * 100_000)
        assert streams.stream_count() == 0
    finally:
        await client.disconnect()
        await server.shutdown()
        await runner.cleanup()
