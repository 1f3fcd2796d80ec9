"""The connection dropped at random points of uploads, downloads, duplex and many-stream
transfers: both ends fail every unfinished stream promptly and leave nothing behind."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio

import sio_stream
from sio_stream import StreamError, create_stream
from tests.support import start_server, wait_for

pytestmark = pytest.mark.anyio

CHUNK = 4096
SIZE = 64 * 1024
CUTS_PER_KIND = 30  # x 4 kinds = 120 cut points
KINDS = ["upload", "download", "duplex", "many"]


class Server:
    def __init__(self, sio: socketio.AsyncServer, url: str) -> None:
        self.sio = sio
        self.url = url
        self.moved = 0  # bytes that arrived anywhere in the current case
        self.outcomes: list[Any] = []  # per server-side stream: bytes received, or the error
        self.tasks: set[asyncio.Task[Any]] = set()
        self.cut = 0
        self.reached = asyncio.Event()  # set as soon as ``moved`` reaches ``cut``

    def count(self, size: int) -> None:
        self.moved += size
        if self.moved >= self.cut:
            self.reached.set()

    @property
    def streams(self) -> sio_stream.StreamSocket:
        return sio_stream.ss(self.sio)


async def _drain(stream: sio_stream.IOStream, server: Server) -> bytes:
    data = bytearray()
    async for chunk in stream:
        data += chunk
        server.count(len(chunk))
    return bytes(data)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    # A cut here must fail every stream at once: session resume (its own tests) is off.
    streams = sio_stream.ss(sio, max_chunk=CHUNK, resume_timeout=0)
    runner, url = await start_server(sio)
    srv = Server(sio, url)

    @streams.on("upload")
    async def upload(sid: str, stream: sio_stream.IOStream) -> None:
        try:
            srv.outcomes.append(await _drain(stream, srv))
        except StreamError as exc:
            srv.outcomes.append(exc)

    @streams.on("download")
    async def download(sid: str, data: bytes) -> sio_stream.IOStream:
        stream = create_stream()

        async def produce() -> None:
            try:
                for start in range(0, len(data), CHUNK):
                    await stream.write(data[start : start + CHUNK])
                await stream.end()
                srv.outcomes.append(data)
            except StreamError as exc:
                srv.outcomes.append(exc)

        task = asyncio.ensure_future(produce())
        srv.tasks.add(task)
        task.add_done_callback(srv.tasks.discard)
        return stream

    @streams.on("duplex")
    async def duplex(sid: str, stream: sio_stream.IOStream) -> None:
        data = bytearray()
        try:
            async for chunk in stream:
                srv.count(len(chunk))
                data += chunk
                await stream.write(chunk)
            await stream.end()
            srv.outcomes.append(bytes(data))
        except StreamError as exc:
            srv.outcomes.append(exc)

    try:
        yield srv
    finally:
        await sio.shutdown()
        await runner.cleanup()


async def _client_side(kind: str, client: socketio.AsyncClient, data: bytes, srv: Server) -> list[Any]:
    streams = sio_stream.ss(client, max_chunk=CHUNK, resume_timeout=0)

    async def send(stream: sio_stream.IOStream) -> None:
        for start in range(0, len(data), CHUNK):
            await stream.write(data[start : start + CHUNK])
        await stream.end()

    async def one_upload() -> Any:
        stream = create_stream()
        await streams.emit("upload", stream)
        await send(stream)
        return data

    if kind == "upload":
        coros = [one_upload()]
    elif kind == "many":
        coros = [one_upload() for _ in range(5)]
    elif kind == "download":

        async def one_download() -> Any:
            stream = await streams.call("download", data, timeout=10)
            return await _drain(stream, srv)

        coros = [one_download()]
    else:

        async def one_duplex() -> Any:
            stream = create_stream()
            await streams.emit("duplex", stream)
            sent, echoed = await asyncio.gather(send(stream), _drain(stream, srv), return_exceptions=True)
            if isinstance(sent, BaseException):
                raise sent
            return echoed

        coros = [one_duplex()]
    results = await asyncio.gather(*coros, return_exceptions=True)
    return list(results)


def _settled_ok(outcome: Any, data: bytes) -> bool:
    return outcome == data or isinstance(outcome, StreamError)


def _from_sio_stream(context: dict[str, Any]) -> bool:
    exc = context.get("exception")
    tb = exc.__traceback__ if exc is not None else None
    while tb is not None:
        if "/sio_stream/" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return "sio_stream" in str(context.get("message", ""))


async def test_random_cuts_fail_every_stream_and_leave_nothing(server: Server) -> None:
    # python-socketio itself may fail to parse a binary attachment orphaned by the abort (a
    # known python-socketio quirk, see tests/test_files.py settle()); only our errors count.
    loop = asyncio.get_running_loop()
    loop_errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    try:
        await _cuts(server)
    finally:
        loop.set_exception_handler(previous)
    ours = [c for c in loop_errors if _from_sio_stream(c)]
    assert ours == []


async def _cuts(server: Server) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    seed = rng.getstate()
    interrupted = 0
    cases = [kind for kind in KINDS for _ in range(CUTS_PER_KIND)]
    rng.shuffle(cases)
    for case, kind in enumerate(cases):
        data = os.urandom(SIZE)
        expected_streams = 5 if kind == "many" else 1
        cut = rng.randrange(0, SIZE * expected_streams)
        server.moved = 0
        server.cut = cut
        server.reached = asyncio.Event()
        server.outcomes = []
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(server.url, transports=["websocket"])
        transfer = asyncio.ensure_future(_client_side(kind, client, data, server))

        async def cutter(
            client: socketio.AsyncClient = client, transfer: asyncio.Future[Any] = transfer
        ) -> None:
            # No polling: abort the moment the byte counter crosses the cut point.
            reached = asyncio.ensure_future(server.reached.wait())
            await asyncio.wait([reached, transfer], timeout=10, return_when=asyncio.FIRST_COMPLETED)
            reached.cancel()
            await client.eio.disconnect(abort=True)

        await cutter()
        context = f"case {case} kind {kind} cut {cut} seed {seed!r}"
        # Both ends settle within a couple of seconds: every stream finished or failed.
        client_results = await asyncio.wait_for(transfer, 2)
        assert all(_settled_ok(r, data) for r in client_results), (context, client_results)
        await wait_for(lambda n=expected_streams: len(server.outcomes) == n, timeout=2)
        assert all(_settled_ok(o, data) for o in server.outcomes), context
        if any(isinstance(r, StreamError) for r in client_results + server.outcomes):
            interrupted += 1
        await wait_for(lambda: server.streams.stream_count() == 0, timeout=2)
        await wait_for(lambda: server.streams.connection_count == 0, timeout=2)
        assert sio_stream.ss(client).stream_count() == 0, context
        await wait_for(lambda: not server.tasks, timeout=2)
        await wait_for(
            lambda: not [t for t in asyncio.all_tasks() if "sio_stream" in t.get_name()], timeout=2
        )
    # Most cuts land mid-transfer (a cut can come after the last byte arrived).
    print(f"{interrupted} of {len(cases)} cuts interrupted a transfer")
    assert interrupted >= len(cases) // 2, interrupted
