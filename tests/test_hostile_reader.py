"""A hostile reader: a raw python-socketio client (no sio_stream) grants a server's writer far
more credit than any window, then stops reading its socket. The writer must wait for the
transport instead of queueing everything its credit allows in python-engineio's send queue
(which grows without bound: nothing is acknowledged at the transport level), and must carry on
once the reader reads again. Absurd credit from a peer that negotiated sio_stream's extensions
fails that stream with a typed error; from a plain (npm) peer it is clamped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio

import sio_stream
from benchmarks.stall_relay import StallRelay, stall_relay
from sio_stream import StreamError, create_stream, sync
from sio_stream.glue._unsent import MAX_UNSENT
from tests.support import start_server, wait_for
from tests.sync_support import sync_server

pytestmark = pytest.mark.anyio

CHUNK = 512 * 1024
#: What the hostile reader asks for: far beyond any window (4 chunks, growing to 32 MiB).
SIZE = 96 * CHUNK


@dataclass
class Scene:
    server: socketio.AsyncServer | socketio.Server
    raw: socketio.AsyncClient
    relay: StallRelay
    streams: Any
    written: list[int] = field(default_factory=lambda: [0])
    received: list[int] = field(default_factory=lambda: [0])
    ends: list[str] = field(default_factory=list)
    errors: list[tuple[Any, ...]] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    producers: set[asyncio.Task[None]] = field(default_factory=set)

    def connection(self) -> Any:
        (connection,) = self.streams._connections.values()
        return connection

    def queued(self) -> int:
        """Bytes waiting in python-engineio's send queue for the raw client (read from the queue
        itself, whatever sio_stream counts): asyncio.Queue's items, or queue.Queue's."""
        (sid,) = self.streams._connections
        eio_sid = self.server.manager.eio_sid_from_sid(sid, "/")
        queue = self.server.eio.sockets[eio_sid].queue
        items = list(queue._queue if isinstance(queue, asyncio.Queue) else queue.queue)
        return sum(len(p.data) for p in items if p is not None and isinstance(p.data, bytes | str))


@contextlib.asynccontextmanager
async def asyncio_server() -> AsyncIterator[tuple[socketio.AsyncServer, Any, int, Callable[[Scene], None]]]:
    server = socketio.AsyncServer(async_mode="aiohttp", max_http_buffer_size=2_000_000)
    streams = sio_stream.ss(server)
    runner, url = await start_server(server)

    def register(scene: Scene) -> None:
        @streams.on("download")
        async def download(sid: str, size: int) -> sio_stream.IOStream:
            stream = create_stream()

            async def produce() -> None:
                piece = bytes(CHUNK)
                try:
                    while scene.written[0] < size:
                        await stream.write(piece)
                        scene.written[0] += len(piece)
                    await stream.end()
                except StreamError as exc:
                    scene.failures.append(exc)

            task = asyncio.ensure_future(produce())
            scene.producers.add(task)
            task.add_done_callback(scene.producers.discard)
            return stream

    try:
        yield server, streams, int(url.rsplit(":", 1)[1]), register
    finally:
        await server.shutdown()
        await runner.cleanup()


@contextlib.asynccontextmanager
async def sync_server_() -> AsyncIterator[tuple[socketio.Server, Any, int, Callable[[Scene], None]]]:
    with sync_server(max_http_buffer_size=2_000_000) as (server, url):
        streams = sync.ss(server)

        def register(scene: Scene) -> None:
            @streams.on("download")
            def download(sid: str, size: int) -> Any:
                stream = sync.create_stream()

                def produce() -> None:
                    piece = bytes(CHUNK)
                    try:
                        while scene.written[0] < size:
                            stream.write(piece)
                            scene.written[0] += len(piece)
                        stream.end()
                    except StreamError as exc:
                        scene.failures.append(exc)

                server.start_background_task(produce)
                return stream

        yield server, streams, int(url.rsplit(":", 1)[1]), register


@pytest.fixture(params=["asyncio", "sync"])
async def scene(request: pytest.FixtureRequest) -> AsyncIterator[Scene]:
    serve = asyncio_server if request.param == "asyncio" else sync_server_
    async with serve() as (server, streams, port, register), stall_relay(port) as relay:
        raw = socketio.AsyncClient()
        scene = Scene(server, raw, relay, streams)
        register(scene)

        @raw.on("$stream-write")
        def on_write(stream_id: str, chunk: Any, *rest: Any) -> None:
            scene.received[0] += len(chunk)

        @raw.on("$stream-end")
        def on_end(stream_id: str, *rest: Any) -> None:
            scene.ends.append(stream_id)

        @raw.on("$stream-error")
        def on_error(*args: Any) -> None:
            scene.errors.append(args)

        await raw.connect(relay.url, transports=["websocket"])
        try:
            yield scene
        finally:
            relay.resume_downstream()
            for task in list(scene.producers):
                task.cancel()
            if raw.connected:
                await raw.disconnect()


async def open_download(scene: Scene, size: int) -> str:
    placeholder = await scene.raw.call("$stream", ("download", size), timeout=10)
    assert isinstance(placeholder, dict)
    stream_id = placeholder["$stream"]
    assert isinstance(stream_id, str)
    return stream_id


async def test_a_reader_that_stops_reading_makes_the_writer_wait_not_queue(scene: Scene) -> None:
    stream_id = await open_download(scene, SIZE)
    scene.relay.stop_downstream()
    # A plain peer: one read per credit, each kept by the writer (up to its clamp of 1,024).
    for _ in range(SIZE // CHUNK):
        await scene.raw.emit("$stream-read", (stream_id, CHUNK))
    connection = scene.connection()
    # Either everything went into the transport's queue (what it did), or the writer waits for
    # the transport: the state it reaches however slow the machine is.
    await wait_for(lambda: scene.written[0] >= SIZE or connection.waiting_for_transport, timeout=30)
    queued = scene.queued()
    assert queued <= MAX_UNSENT + 2 * CHUNK, f"{queued} bytes queued for a reader that reads nothing"
    assert scene.written[0] < SIZE
    if isinstance(scene.server, socketio.AsyncServer):  # one thread: the two counts agree
        (stats,) = scene.streams.statistics().connections
        assert stats.unsent == queued
    # The reader reads again: every byte arrives, in order of the credit it gave.
    scene.relay.resume_downstream()
    await wait_for(lambda: scene.received[0] >= SIZE and stream_id in scene.ends, timeout=60)
    assert scene.received[0] == SIZE
    assert scene.failures == [] and scene.errors == []


async def test_absurd_credit_from_a_sio_stream_peer_fails_the_stream(scene: Scene) -> None:
    features = ["batch-read", "unacked-write", "read-size", "credit-limit"]
    await scene.raw.emit("$stream-hello", ({"version": 1, "features": features},))
    stream_id = await open_download(scene, SIZE)
    await scene.raw.emit("$stream-read", (stream_id, CHUNK, 512))  # 256 MiB of credit at once
    await wait_for(lambda: bool(scene.errors), timeout=10)
    assert scene.errors[0][0] == stream_id
    assert "credit" in scene.errors[0][1]
    await wait_for(lambda: bool(scene.failures), timeout=10)
    assert isinstance(scene.failures[0], sio_stream.RemoteProtocolError)


async def test_absurd_credit_from_a_plain_peer_is_clamped(scene: Scene) -> None:
    stream_id = await open_download(scene, 4 * CHUNK)
    for _ in range(2000):  # 1 GiB of credit, one read at a time, as a JavaScript reader sends
        await scene.raw.emit("$stream-read", (stream_id, CHUNK))
    await wait_for(lambda: stream_id in scene.ends, timeout=30)
    assert scene.received[0] == 4 * CHUNK
    assert scene.errors == [] and scene.failures == []


@pytest.mark.parametrize("driver", ["asyncio", "sync"])
async def test_a_client_writer_waits_for_a_server_that_stops_reading(driver: str) -> None:
    """The same on the client's side: a raw python-socketio server grants an upload credit for
    all of it and stops reading its socket; the client's writer waits for the transport. (The
    sync client's blocking calls run in threads, beside the relay on this loop.)"""
    raw_server = socketio.AsyncServer(async_mode="aiohttp", max_http_buffer_size=2_000_000)
    received = [0]
    ends: list[str] = []

    @raw_server.on("$stream")
    async def on_stream(sid: str, event: str, placeholder: dict[str, Any]) -> None:
        for _ in range(SIZE // CHUNK):  # one read per credit, as a JavaScript reader sends
            await raw_server.emit("$stream-read", (placeholder["$stream"], CHUNK), to=sid)

    @raw_server.on("$stream-write")
    def on_write(sid: str, stream_id: str, chunk: Any, *rest: Any) -> None:
        received[0] += len(chunk)

    @raw_server.on("$stream-end")
    def on_end(sid: str, stream_id: str, *rest: Any) -> None:
        ends.append(stream_id)

    runner, url = await start_server(raw_server)
    blocking = driver == "sync"
    client: Any = socketio.Client() if blocking else socketio.AsyncClient()
    streams: Any = sync.ss(client) if blocking else sio_stream.ss(client)
    stream: Any = sync.create_stream() if blocking else create_stream()
    written = [0]

    async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if blocking:
            return await asyncio.to_thread(fn, *args, **kwargs)
        return await fn(*args, **kwargs)

    def produce_sync() -> None:
        piece = bytes(CHUNK)
        while written[0] < SIZE:
            stream.write(piece)
            written[0] += len(piece)
        stream.end()

    async def produce() -> None:
        if blocking:
            await asyncio.to_thread(produce_sync)
            return
        piece = bytes(CHUNK)
        while written[0] < SIZE:
            await stream.write(piece)
            written[0] += len(piece)
        await stream.end()

    try:
        async with stall_relay(int(url.rsplit(":", 1)[1])) as relay:
            await call(client.connect, relay.url, transports=["websocket"])
            await call(streams.emit, "upload", stream)
            # The server's reads came: the writer holds credit for the whole upload.
            await wait_for(lambda: stream._core.credit.available == SIZE // CHUNK, timeout=10)
            relay.stop_upstream()
            producer = asyncio.ensure_future(produce())
            (connection,) = streams._connections.values()
            await wait_for(lambda: written[0] >= SIZE or connection.waiting_for_transport, timeout=30)
            queue = client.eio.queue
            items = list(queue._queue if isinstance(queue, asyncio.Queue) else queue.queue)
            queued = sum(len(p.data) for p in items if p is not None and isinstance(p.data, bytes))
            assert queued <= MAX_UNSENT + 2 * CHUNK, f"{queued} bytes queued for a server that reads nothing"
            assert written[0] < SIZE
            relay.resume_upstream()
            await producer
            await wait_for(lambda: received[0] >= SIZE and stream.id in ends, timeout=60)
            assert received[0] == SIZE
            await call(client.disconnect)
    finally:
        if client.connected:
            await call(client.disconnect)
        await raw_server.shutdown()
        await runner.cleanup()
