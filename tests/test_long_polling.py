"""Streams over long-polling: a Python client that never upgrades to a websocket
(``transports=["polling"]``, as behind a proxy that refuses websockets) against an aiohttp server
attached the usual way (``sio.attach(app)``). Its POST bodies carry hundreds of kilobytes of
base64 and arrive in many TCP segments: python-engineio's aiohttp driver read them with one
``read()`` and the connection failed until ``ss()`` had them read whole
(``sio_stream/glue/_whole_posts.py``)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

import pytest
import socketio

from sio_stream import create_stream, ss, sync
from sio_stream.glue import _split_posts as split_posts
from tests.support import start_server

pytestmark = pytest.mark.anyio

SIZE = 3 * 1024 * 1024


def serve_downloads(streams: Any, download: bytes, tasks: list[asyncio.Future[None]]) -> None:
    """On ``down``, write ``download`` into the stream the client sent (in a task of ``tasks``)."""

    @streams.on("down")
    async def down(sid: str, stream: Any) -> None:
        async def write() -> None:
            for i in range(0, SIZE, 100_000):
                await stream.write(download[i : i + 100_000])
            await stream.end()

        tasks.append(asyncio.ensure_future(write()))


async def test_uploads_and_a_download_over_long_polling() -> None:
    # A long-polling GET waits up to a ping interval for something to return, and the server's
    # shutdown waits for it: a short interval keeps the test's teardown short.
    sio = socketio.AsyncServer(async_mode="aiohttp", ping_interval=1, ping_timeout=5)
    streams = ss(sio)
    received: dict[str, str] = {}
    download = os.urandom(SIZE)
    tasks: list[asyncio.Future[None]] = []

    @streams.on("up")
    async def up(sid: str, stream: object, name: str) -> str:
        digest = hashlib.sha256()
        async for chunk in stream:  # type: ignore[attr-defined]
            digest.update(chunk)
        received[name] = digest.hexdigest()
        return name

    serve_downloads(streams, download, tasks)

    runner, url = await start_server(sio)
    client = socketio.AsyncClient()
    client_streams = ss(client)
    try:
        await client.connect(url, transports=["polling"])
        uploads = {name: os.urandom(SIZE) for name in ("a", "b")}

        async def upload(name: str) -> object:
            stream = create_stream()
            answer = asyncio.ensure_future(client_streams.call("up", stream, name, timeout=120))
            await stream.write(uploads[name])
            await stream.end()
            return await answer

        async def read_download() -> bytes:
            stream = create_stream()
            await client_streams.emit("down", stream)
            return b"".join([chunk async for chunk in stream])

        answers = await asyncio.wait_for(asyncio.gather(upload("a"), upload("b"), read_download()), 120)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)  # the server's end() was answered
        assert client.transport() == "polling"
        assert answers[:2] == ["a", "b"]
        assert answers[2] == download
        for name, data in uploads.items():
            assert received[name] == hashlib.sha256(data).hexdigest()
    finally:
        await client.disconnect()
        await runner.cleanup()


async def test_a_sync_client_uploads_and_downloads_over_long_polling() -> None:
    # The sync client's POSTs are split into runs of whole packets too (glue/_split_posts.py):
    # two chunks queued at once made one POST past the server's 1,000,000 bytes.
    sio = socketio.AsyncServer(async_mode="aiohttp", ping_interval=1, ping_timeout=5)
    streams = ss(sio)
    download = os.urandom(SIZE)
    tasks: list[asyncio.Future[None]] = []

    @streams.on("up")
    async def up(sid: str, stream: object) -> str:
        digest = hashlib.sha256()
        async for chunk in stream:  # type: ignore[attr-defined]
            digest.update(chunk)
        return digest.hexdigest()

    serve_downloads(streams, download, tasks)

    runner, url = await start_server(sio)
    upload = os.urandom(SIZE)

    def client_side() -> tuple[str, object, bytes]:
        client = socketio.Client()
        client_streams = sync.ss(client)
        client.connect(url, transports=["polling"])
        try:
            stream = sync.create_stream()
            outcome: list[object] = []
            answering = client.start_background_task(
                lambda: outcome.append(client_streams.call("up", stream, timeout=120))
            )
            for i in range(0, SIZE, 300_000):  # several chunks queued at once
                stream.write(upload[i : i + 300_000])
            stream.end()
            back = sync.create_stream()
            client_streams.emit("down", back)
            received = b"".join(back)
            answering.join(120)
            return client.transport(), outcome[0] if outcome else None, received
        finally:
            client.disconnect()

    try:
        transport, answer, received = await asyncio.wait_for(asyncio.to_thread(client_side), 180)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        assert transport == "polling"
        assert answer == hashlib.sha256(upload).hexdigest()
        assert received == download
    finally:
        await runner.cleanup()


def test_a_large_payload_splits_into_runs_of_whole_packets() -> None:
    packets = ["4" + "a" * 400_000, "4" + "b" * 400_000, "2", "4" + "c" * 1_200_000, "3"]
    body = "\x1e".join(packets)
    parts = split_posts.split(body)
    assert [p.split("\x1e") for p in parts] == [packets[:3], packets[3:4], packets[4:]]
    assert "\x1e".join(parts) == body
    assert split_posts.split("4hello\x1e2") == ["4hello\x1e2"]
