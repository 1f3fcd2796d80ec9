"""Issue 16's attack over a real server: hostile clients spend every credit on large objects and
chunks while the handler reads slowly; the server's accounting stays within its budgets and an
honest client beside them uploads and downloads intact.

The hostile clients are raw python-socketio clients speaking the wire protocol (no hello, so
the server treats them as JavaScript writers: one read per credit, no promised chunk size).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import uuid
from typing import Any

import pytest
import socketio

import sio_stream
from sio_stream import Budget, create_stream
from tests.support import start_server, wait_for

pytestmark = pytest.mark.anyio

CONNECTION_BUDGET = 4 * 1024 * 1024
PROCESS_BUDGET = 16 * 1024 * 1024
HOSTILE_CLIENTS = 4  # 4 x 4 MiB: the process budget binds, not only the connection budgets
OBJECT = "o" * 200_000
CHUNK = b"c" * 900_000


class Hostile:
    """Opens object and byte streams to the slow handler and answers every read with a write."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = socketio.AsyncClient()
        self.objects: set[str] = set()
        self.writes = 0
        self.errors: set[str] = set()
        self.stopped = False
        self.sio.on("$stream-read", self._on_read)
        self.sio.on("$stream-error", self._on_error)
        self.opened = 0
        self.max_streams = 0

    async def _on_read(self, stream_id: str, *args: Any) -> None:
        if stream_id in self.errors or self.stopped:
            return
        self.writes += 1
        chunk: Any = (OBJECT, "utf8") if stream_id in self.objects else (CHUNK, "buffer")
        await self.sio.emit("$stream-write", (stream_id, *chunk), callback=lambda *a: None)

    async def _on_error(self, stream_id: str, *args: Any) -> None:
        # A stream refused for the budget: open another one and go on (up to max_streams).
        self.errors.add(stream_id)
        if not self.stopped and self.opened < self.max_streams:
            await self._open()

    async def _open(self) -> None:
        stream_id = str(uuid.uuid4())
        placeholder: dict[str, Any] = {"$stream": stream_id}
        if self.opened % 2 == 0:
            self.objects.add(stream_id)
            placeholder["options"] = {"objectMode": True}
        self.opened += 1
        await self.sio.emit("$stream", ("slow", placeholder))

    async def stop(self) -> None:
        self.stopped = True
        await self.sio.disconnect()

    async def start(self, streams: int, reopen: int) -> None:
        """Open ``streams`` at once, and a new one for each refused, up to ``reopen`` in all."""
        self.max_streams = reopen
        await self.sio.connect(self.url, transports=["websocket"])
        for _ in range(streams):
            await self._open()


async def test_hostile_floods_stay_within_the_budgets_and_an_honest_client_moves() -> None:
    server = socketio.AsyncServer(async_mode="aiohttp")
    process = Budget(PROCESS_BUDGET)
    streams = sio_stream.ss(server, max_buffered=CONNECTION_BUDGET, process_budget=process)
    release = asyncio.Event()

    @streams.on("slow")
    async def slow(sid: str, stream: sio_stream.IOStream) -> None:
        await stream.receive()  # one chunk, then nothing until the end of the test
        await release.wait()

    @streams.on("upload")
    async def upload(sid: str, stream: sio_stream.IOStream) -> str:
        return hashlib.sha256(await stream.read()).hexdigest()

    payload = os.urandom(3 * 1024 * 1024)

    @streams.on("download")
    async def download(sid: str) -> sio_stream.IOStream:
        stream = create_stream()
        task = asyncio.ensure_future(stream.end(payload))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return stream

    tasks: set[asyncio.Task[Any]] = set()
    runner, url = await start_server(server)
    hostile = [Hostile(url) for _ in range(HOSTILE_CLIENTS)]
    honest = socketio.AsyncClient()
    honest_streams = sio_stream.ss(honest)
    peaks = {"process": 0, "connection": 0}
    sampling = True

    async def sample() -> None:
        # Watches the accounting while everything runs (a monitor, not a synchronisation).
        while sampling:
            stats = streams.statistics()
            peaks["process"] = max(peaks["process"], stats.process.held + stats.process.reserved)
            for conn in stats.connections:
                peaks["connection"] = max(peaks["connection"], conn.held + conn.reserved)
            await asyncio.sleep(0.002)

    monitor = asyncio.ensure_future(sample())
    try:
        for client in hostile:
            await client.start(streams=10, reopen=60)
        # Streams that write more than their credit's reservation and find no room fail
        # (JavaScript-style writers promise no chunk size); each client then opens another.
        await wait_for(lambda: all(c.errors for c in hostile), timeout=60)
        await honest.connect(url, transports=["websocket"])
        for _ in range(2):
            stream = create_stream()
            call = asyncio.ensure_future(honest_streams.call("upload", stream, timeout=120))
            await asyncio.wait_for(stream.end(payload), 120)
            assert await call == hashlib.sha256(payload).hexdigest()
            received = await honest_streams.call("download", timeout=120)
            assert await asyncio.wait_for(received.read(), 120) == payload
        # The attack was real: the server held a large part of its budget meanwhile.
        assert peaks["process"] > PROCESS_BUDGET // 2
        assert peaks["process"] <= PROCESS_BUDGET and peaks["connection"] <= CONNECTION_BUDGET
        assert process.held + process.reserved <= PROCESS_BUDGET
        # No connection was closed for it.
        assert all(c.sio.connected for c in hostile)
        assert streams.connection_count == HOSTILE_CLIENTS + 1
    finally:
        sampling = False
        await monitor
        release.set()
        for client in hostile:
            await client.stop()
        await honest.disconnect()
        await wait_for(lambda: streams.stream_count() == 0, timeout=30)
        await wait_for(lambda: not tasks, timeout=30)
        await server.shutdown()
        await runner.cleanup()
    # Everything the peers made us hold is given back once their streams are gone.
    await wait_for(lambda: gc.collect() >= 0 and process.held + process.reserved == 0, timeout=30)
    assert process.statistics().accounts == 0
