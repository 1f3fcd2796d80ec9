"""What a new user hits first (issue 9, points 1-4), over a real server and client on 127.0.0.1:
streams emitted from a server's connect handler, call() timeouts during long transfers,
handlers that fail, and what the peer is told about local failures."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import socketio

from sio_stream import (
    HandlerError,
    LocalProtocolError,
    StreamBrokenError,
    StreamTimeoutError,
    create_stream,
    send_file,
    ss,
)
from tests.support import start_server, wait_for

pytestmark = pytest.mark.anyio

PAYLOAD = os.urandom(3 * 256 * 1024 + 17)


@pytest.fixture
async def server_url() -> AsyncIterator[Callable[[socketio.AsyncServer], Any]]:
    """Start a server (after its handlers are registered); clean up every server and client."""
    started: list[tuple[socketio.AsyncServer, Any]] = []
    clients: list[socketio.AsyncClient] = []

    async def start(sio: socketio.AsyncServer) -> str:
        runner, url = await start_server(sio)
        started.append((sio, runner))
        return url

    start.clients = clients  # type: ignore[attr-defined]
    yield start
    for client in clients:
        if client.connected:
            await client.disconnect()
    for sio, runner in started:
        await sio.shutdown()
        await runner.cleanup()
    gc.collect()


async def connect_client(url: str, fixture: Any) -> tuple[socketio.AsyncClient, Any]:
    client = socketio.AsyncClient()
    fixture.clients.append(client)
    streams = ss(client)
    received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    @streams.on("script")
    async def script(stream: Any) -> None:
        received.set_result(await stream.read())

    await client.connect(url, transports=["websocket"])
    return client, received


# -- 1. streams emitted from the server's connect handler -----------------------------------
@pytest.mark.parametrize("style", ["await", "plain", "task"])
async def test_stream_emitted_from_connect_handler_reaches_the_client(server_url, style, tmp_path):
    """The tutorial: the connect handler emits a stream and pipes a file into it."""
    path = tmp_path / "script.bin"
    path.write_bytes(PAYLOAD)
    sio = socketio.AsyncServer(async_mode="aiohttp")
    streams = ss(sio)
    sent: list[asyncio.Task[Any]] = []

    @sio.event
    async def connect(sid: str, environ: Any, auth: Any) -> None:
        stream = create_stream()
        if style == "await":
            await streams.emit("script", stream, to=sid)
        elif style == "plain":
            streams.emit("script", stream, to=sid)  # as in JavaScript: no await
        else:
            sent.append(asyncio.create_task(streams.emit("script", stream, to=sid)))
        sent.append(asyncio.create_task(send_file(stream, path)))

    url = await server_url(sio)
    client, received = await connect_client(url, server_url)
    assert await asyncio.wait_for(received, 20) == PAYLOAD
    await asyncio.wait_for(asyncio.gather(*sent), 20)
    await wait_for(lambda: streams.stream_count() == 0 and ss(client).stream_count() == 0)


async def test_waiting_on_the_peer_inside_the_connect_handler_fails_at_once(server_url):
    """Waits that could only end after the handler returns raise with advice; what was queued
    is still delivered, and the connection opens."""
    sio = socketio.AsyncServer(async_mode="aiohttp")
    streams = ss(sio)
    errors: list[BaseException] = []

    @sio.event
    async def connect(sid: str, environ: Any, auth: Any) -> None:
        stream = create_stream()
        await streams.emit("script", stream, to=sid)
        try:
            await streams.call("script", create_stream(), to=sid)
        except LocalProtocolError as exc:
            errors.append(exc)
        try:
            await stream.end(PAYLOAD)  # more than the high-water mark, then waits for acks
        except LocalProtocolError as exc:
            errors.append(exc)

    url = await server_url(sio)
    _client, received = await connect_client(url, server_url)
    assert [type(e) for e in errors] == [LocalProtocolError, LocalProtocolError]
    assert all("connect handler" in str(e) and "create_task" in str(e) for e in errors)
    assert await asyncio.wait_for(received, 20) == PAYLOAD
    await wait_for(lambda: streams.stream_count() == 0)


async def test_streams_of_a_refused_connection_fail_and_are_released(server_url):
    sio = socketio.AsyncServer(async_mode="aiohttp")
    streams = ss(sio)
    stream = create_stream()

    @sio.event
    async def connect(sid: str, environ: Any, auth: Any) -> bool:
        streams.emit("script", stream, to=sid)
        return False

    url = await server_url(sio)
    client = socketio.AsyncClient()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(url, transports=["websocket"])
    assert streams.stream_count() == 0
    with pytest.raises(StreamBrokenError, match="Connection aborted"):
        await stream.write(b"x")


# -- 2. call() timeouts count idle time, not transfer time -----------------------------------
async def test_call_timeout_does_not_cut_a_transfer_that_moves(pair):
    @pair.server_streams.on("slow")
    async def slow(sid: str, stream: Any) -> int:
        size = 0
        while chunk := await stream.read(65536):
            size += len(chunk)
            await asyncio.sleep(0.01)  # a slow consumer: pacing, not synchronisation
        return size

    stream = create_stream()
    loop = asyncio.get_running_loop()
    started = loop.time()
    reply = asyncio.create_task(pair.client_streams.call("slow", stream, timeout=0.3))
    # 4 MiB read at 64 KiB per 10 ms: over 0.6 s in all, but credit comes back every 512 KiB.
    for _ in range(64):
        await stream.write(os.urandom(65536))
    await stream.end()
    assert await reply == 64 * 65536
    assert loop.time() - started > 0.6  # well past the timeout: only progress kept it alive


async def test_call_timeout_fires_when_its_streams_stall(pair):
    release = asyncio.Event()

    @pair.server_streams.on("stall")
    async def stall(sid: str, stream: Any) -> None:
        await release.wait()  # never reads

    stream = create_stream()
    with pytest.raises(StreamTimeoutError, match="no progress"):
        await pair.client_streams.call("stall", stream, timeout=0.3)
    release.set()


# -- 3. a handler that fails is not an empty reply -------------------------------------------
async def test_call_raises_when_the_handler_raises(pair, caplog):
    seen: list[Any] = []

    @pair.server_streams.on("boom")
    async def boom(sid: str, stream: Any) -> None:
        seen.append(stream)
        raise ValueError("secret detail in /srv/app/config.py")

    stream = create_stream()
    with caplog.at_level(logging.ERROR, logger="sio_stream"), pytest.raises(HandlerError) as info:
        await pair.client_streams.call("boom", stream)
    assert info.value.remote
    assert info.value.message == "handler for 'boom' failed (ValueError)"
    # The detail is in the server's log, not sent to the peer.
    assert "secret detail" in caplog.text
    with pytest.raises(StreamBrokenError) as broken:
        await stream.write(b"x" * 1_000_000)
    assert broken.value.message == "handler for 'boom' failed (ValueError)"
    assert seen[0].error is not None


async def test_handler_error_message_reaches_the_caller(pair):
    @pair.server_streams.on("quota")
    async def quota(sid: str, stream: Any) -> None:
        raise HandlerError("quota exceeded")

    with pytest.raises(HandlerError, match=r"^quota exceeded$"):
        await pair.client_streams.call("quota", create_stream())


async def test_call_for_an_event_nobody_handles_raises(pair):
    with pytest.raises(HandlerError, match="no handler for event 'nobody'"):
        await pair.client_streams.call("nobody", create_stream())


async def test_emit_callback_receives_the_handler_error(pair):
    @pair.server_streams.on("boom")
    async def boom(sid: str) -> None:
        raise RuntimeError("x")

    got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    await pair.client_streams.emit("boom", callback=got.set_result)
    error = await asyncio.wait_for(got, 20)
    assert isinstance(error, HandlerError) and error.message == "handler for 'boom' failed (RuntimeError)"


async def test_a_handler_returning_none_still_acks_none(pair):
    @pair.server_streams.on("empty")
    async def empty(sid: str, stream: Any) -> None:
        await stream.read()

    stream = create_stream()
    reply = asyncio.create_task(pair.client_streams.call("empty", stream))
    await stream.end(b"data")
    assert await reply is None


# -- 4. local paths stay local ---------------------------------------------------------------
async def test_a_missing_file_does_not_leak_its_path(pair, tmp_path):
    missing = tmp_path / "uploads" / "big.bin"
    feeding: list[asyncio.Task[None]] = []

    @pair.server_streams.on("get")
    async def get(sid: str) -> Any:
        stream = create_stream()

        async def feed() -> None:
            with contextlib.suppress(OSError):  # send_file destroyed the stream with the error
                await send_file(stream, missing)

        feeding.append(asyncio.create_task(feed()))
        return stream

    stream = await pair.client_streams.call("get")
    with pytest.raises(StreamBrokenError) as info:
        await stream.read()
    assert info.value.message == "No such file or directory"
    assert str(tmp_path) not in str(info.value)


async def test_destroy_with_an_os_error_keeps_the_detail_locally(pair, tmp_path):
    got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    @pair.server_streams.on("up")
    async def up(sid: str, stream: Any) -> None:
        try:
            (tmp_path / "nope" / "file").stat()
        except OSError as exc:
            stream.destroy(exc)
            got.set_result(stream.error)

    stream = create_stream()
    await pair.client_streams.emit("up", stream)
    local = await asyncio.wait_for(got, 20)
    assert str(tmp_path) in local.message  # the server keeps the whole story
    with pytest.raises(StreamBrokenError) as info:
        while True:
            await stream.write(b"x" * 65536)
    assert info.value.message == "No such file or directory"
