"""Slow-reader isolation: a reader that stops reading one stream costs the other end at most
that stream's window, and does not slow other streams on the same connection or other
connections to the same server.

Bounds are read from the protocol core (inbox, pending data, credit) and from the queues of
python-socketio/engine.io (the server's per-client send queue, the client's send queue), sampled
on every event-loop turn while other transfers run. Throughput is compared as a ratio with a
generous bound, so the test stays deterministic on a busy machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio

import sio_stream
from sio_stream import IOStream, StreamError, create_stream
from sio_stream.core._core import DEFAULT_MAX_CHUNK, DEFAULT_WINDOW
from tests.support import start_server, wait_for

pytestmark = pytest.mark.anyio

BLOCK = 64 * 1024
TRANSFER = 48 * 1024 * 1024  # bytes each timed transfer moves (~0.1-0.5 s on loopback)
STALL_AFTER = 1024 * 1024  # a stalled reader reads this much, then stops
WINDOW_BYTES = DEFAULT_WINDOW * DEFAULT_MAX_CHUNK
# What a stalled writer may hold: its high-water mark (256 KiB) plus the one block it was
# writing when the buffer went over it.
WRITER_BOUND = 256 * 1024 + BLOCK
# Packets engine.io may queue on either side: python-socketio sends every chunk through it, and
# the stalled stream must not leave a backlog there (the window bounds it to a few packets).
EIO_QUEUE_BOUND = 4 * DEFAULT_WINDOW


@dataclass
class Arena:
    server: socketio.AsyncServer
    url: str
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    stalled: list[IOStream] = field(default_factory=list)  # server-side streams whose reader stalls
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def streams(self) -> sio_stream.StreamSocket:
        return sio_stream.ss(self.server)

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def client(self) -> socketio.AsyncClient:
        client = socketio.AsyncClient()
        sio_stream.ss(client, initial_credit=0, max_window=WINDOW_BYTES)
        await client.connect(self.url, transports=["websocket"])
        return client

    def eio_queue(self, sid: str) -> int:
        eio_sid = self.server.manager.eio_sid_from_sid(sid, "/")
        socket = self.server.eio.sockets.get(eio_sid)
        return socket.queue.qsize() if socket is not None else 0


async def _produce(stream: IOStream, size: int | None) -> None:
    """Write ``size`` bytes (forever when ``None``) and end; a failed stream just stops."""
    block = b"d" * BLOCK
    sent = 0
    with contextlib.suppress(StreamError):
        while size is None or sent < size:
            await stream.write(block)
            sent += BLOCK
        await stream.end()


@pytest.fixture
async def arena() -> AsyncIterator[Arena]:
    sio = socketio.AsyncServer(async_mode="aiohttp", max_http_buffer_size=4 * 1024 * 1024)
    runner, url = await start_server(sio)
    result = Arena(sio, url)
    # The bounds here are the configured window's. Initial credit (negotiated initial-credit)
    # lets a connection's first stream hold the offer (16 MiB) instead, and a window grown from
    # it opens the next stream wider: tests/test_initial_credit.py bounds that.
    # Nor may windows grow (window-growth): whether one grows is the tuner's call from the
    # round trips it timed, so on busy cores a stalled reader held 13 or 61 chunks of windows
    # grown from 4. max_window, which bounds growth, is pinned to the configured window here.
    streams = sio_stream.ss(sio, initial_credit=0, max_window=WINDOW_BYTES)

    @streams.on("download")
    async def download(sid: str, size: int | None) -> IOStream:
        stream = create_stream()
        result.spawn(_produce(stream, size))
        return stream

    @streams.on("upload")
    async def upload(sid: str, stream: IOStream) -> int:
        return len(await stream.read())

    @streams.on("stalled-upload")
    async def stalled_upload(sid: str, stream: IOStream) -> None:
        result.stalled.append(stream)
        got = 0
        while got < STALL_AFTER:
            got += len(await stream.receive())
        await result.release.wait()  # the reader stops here
        stream.destroy("released")

    try:
        yield result
    finally:
        result.release.set()
        for task in list(result.tasks):
            task.cancel()
        await sio.shutdown()
        await runner.cleanup()


class Sampler:
    """Records the largest value each probe takes, on every event-loop turn."""

    def __init__(self, probes: dict[str, Callable[[], int]]) -> None:
        self.probes = probes
        self.peaks = dict.fromkeys(probes, 0)
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            for name, probe in self.probes.items():
                self.peaks[name] = max(self.peaks[name], probe())
            await asyncio.sleep(0)

    def __enter__(self) -> Sampler:
        self._task = asyncio.ensure_future(self._run())
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._task is not None
        self._task.cancel()


async def _timed_download(client: socketio.AsyncClient) -> float:
    started = time.perf_counter()
    stream = await sio_stream.ss(client).call("download", TRANSFER, timeout=30)
    data = await asyncio.wait_for(stream.read(), 60)
    assert len(data) == TRANSFER
    return time.perf_counter() - started


async def _timed_upload(client: socketio.AsyncClient) -> float:
    started = time.perf_counter()
    stream = create_stream()
    call = asyncio.ensure_future(sio_stream.ss(client).call("upload", stream, timeout=60))
    await _produce(stream, TRANSFER)
    assert await asyncio.wait_for(call, 60) == TRANSFER
    return time.perf_counter() - started


def _stalled(reader: Any, writer: Any) -> bool:
    """The writer can send nothing more until the reader reads again: nothing in flight, no
    credit left with the writer, none the reader owes from the connection's budget, and data
    waiting. Not "the window is full": toward a sio_stream writer a reader grants back in
    batches of a quarter window, so one that stops reading may keep up to a quarter of its
    window's credit unsent (``owed_reads``, paid when it reads again), and its window may have
    grown while it read (on busy cores: 13 chunks held of a window grown to 16)."""
    assert reader.window is not None
    return (
        reader.window.outstanding == 0
        and reader.owed_credit == 0
        and writer.credit.available == 0
        and writer.pending_size > 0
    )


def _held(reader: Any) -> tuple[int, int]:
    """What a stalled reader holds and has consumed: neither may change while it stays stalled."""
    return reader.window.buffered, reader.window.consumed_total


async def _stall_a_download(arena: Arena, client: socketio.AsyncClient) -> IOStream:
    """A download whose client-side reader reads STALL_AFTER bytes and stops; returns once the
    server-side writer is blocked on it (see :func:`_stalled`)."""
    stream = await sio_stream.ss(client).call("download", None, timeout=30)
    got = 0
    while got < STALL_AFTER:
        got += len(await stream.receive())
    writer = _server_stream_of(arena, stream.id)
    await wait_for(lambda: _stalled(stream._core, writer))
    return stream


async def _stall_an_upload(arena: Arena, client: socketio.AsyncClient) -> IOStream:
    stream = create_stream()
    await sio_stream.ss(client).emit("stalled-upload", stream)
    arena.spawn(_produce(stream, None))
    await wait_for(lambda: bool(arena.stalled))
    await wait_for(lambda: _stalled(arena.stalled[-1]._core, stream._core))
    return stream


def _server_stream_of(arena: Arena, stream_id: str) -> Any:
    for connection in arena.streams._connections.values():
        if stream_id in connection.streams:
            return connection.streams[stream_id]
    raise AssertionError(f"stream {stream_id} not on the server")


def _stall_probes(arena: Arena, client: Any, sid: str, reader: Any, writer: Any) -> dict[str, Any]:
    """What a stalled stream may hold, sampled on every loop turn: both cores and both queues."""
    return {
        "reader inbox": lambda: reader.inbox.size,
        "reader buffered chunks": lambda: reader.window.buffered + reader.window.outstanding,
        "writer pending": lambda: writer.pending_size,
        "writer credit": lambda: writer.credit.available,
        "server eio queue": lambda: arena.eio_queue(sid),
        "client eio queue": lambda: client.eio.queue.qsize(),
    }


def _assert_bounded(peaks: dict[str, Any]) -> None:
    assert peaks["reader inbox"] <= WINDOW_BYTES, peaks
    assert peaks["reader buffered chunks"] <= DEFAULT_WINDOW, peaks
    assert peaks["writer pending"] <= WRITER_BOUND, peaks
    assert peaks["writer credit"] == 0, peaks
    assert peaks["server eio queue"] <= EIO_QUEUE_BOUND, peaks
    assert peaks["client eio queue"] <= EIO_QUEUE_BOUND, peaks


async def test_a_stalled_download_holds_one_window_and_does_not_slow_the_connection(arena: Arena) -> None:
    client = await arena.client()
    try:
        sid = client.get_sid("/")
        alone = await _timed_download(client)

        stalled = await _stall_a_download(arena, client)
        reader = stalled._core
        writer = _server_stream_of(arena, stalled.id)
        held = _held(reader)
        with Sampler(_stall_probes(arena, client, sid, reader, writer)) as sampler:
            beside = await _timed_download(client)
            other = await arena.client()
            try:
                other_beside = await _timed_download(other)
            finally:
                await other.disconnect()
            beside_up = await _timed_upload(client)

        _assert_bounded(sampler.peaks)
        # Still blocked: nothing moved on the stalled stream while the others ran.
        assert _stalled(reader, writer) and _held(reader) == held, (held, _held(reader))
        assert writer.error is None and stalled.error is None

        assert alone / beside >= 0.3, (alone, beside)
        assert alone / other_beside >= 0.3, (alone, other_beside)
        assert alone / beside_up >= 0.15, (alone, beside_up)  # uploads run slower than downloads

        # The stalled reader picks up where it stopped.
        more = await asyncio.wait_for(stalled.receive(), 10)
        assert more
        stalled.destroy("done")
        await wait_for(lambda: arena.streams.stream_count() == 0)
    finally:
        await client.disconnect()


async def test_a_stalled_upload_reader_holds_one_window_and_does_not_slow_others(arena: Arena) -> None:
    client = await arena.client()
    try:
        sid = client.get_sid("/")
        alone = await _timed_upload(client)

        stalled = await _stall_an_upload(arena, client)
        reader = arena.stalled[-1]._core
        writer = stalled._core
        held = _held(reader)
        with Sampler(_stall_probes(arena, client, sid, reader, writer)) as sampler:
            beside = await _timed_upload(client)
            other = await arena.client()
            try:
                other_beside = await _timed_upload(other)
            finally:
                await other.disconnect()

        _assert_bounded(sampler.peaks)
        assert _stalled(reader, writer) and _held(reader) == held, (held, _held(reader))
        assert writer.error is None

        assert alone / beside >= 0.3, (alone, beside)
        assert alone / other_beside >= 0.3, (alone, other_beside)

        arena.release.set()  # the server handler destroys its stream: the writer fails
        await wait_for(lambda: stalled.error is not None)
        await wait_for(lambda: arena.streams.stream_count() == 0)
    finally:
        await client.disconnect()


async def test_many_stalled_streams_on_many_connections_stay_bounded(arena: Arena) -> None:
    """Ten connections with three stalled downloads each: the server holds at most the writers'
    high-water marks, and a fresh connection still gets its transfer through."""
    clients = [await arena.client() for _ in range(10)]
    try:
        stalled = [await _stall_a_download(arena, c) for c in clients for _ in range(3)]
        writers = [_server_stream_of(arena, s.id) for s in stalled]
        fresh = await arena.client()
        try:
            with Sampler(
                {
                    "server pending": lambda: sum(w.pending_size for w in writers),
                    "server eio queues": lambda: max(arena.eio_queue(c.get_sid("/")) for c in clients),
                }
            ) as sampler:
                await _timed_download(fresh)
        finally:
            await fresh.disconnect()
        assert sampler.peaks["server pending"] <= len(writers) * WRITER_BOUND, sampler.peaks
        assert sampler.peaks["server eio queues"] <= EIO_QUEUE_BOUND, sampler.peaks
        assert all(s.error is None for s in stalled)
    finally:
        for c in clients:
            await c.disconnect()
    await wait_for(lambda: arena.streams.stream_count() == 0)
