"""Window growth in the sync driver: over a long link (the benchmarks' emulator, 60 ms round
trip), a byte stream's read window grows beyond its configured size in both directions, as the
asyncio driver's does (the same core, fed the sync driver's clock and features)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.link import Link
from sio_stream import sync
from sio_stream.core._config import DEFAULT_WINDOW
from tests.sync_support import sync_client, sync_server

MiB = 1024 * 1024
SIZE = 24 * MiB
TIMEOUT = 120.0


@contextmanager
def long_link(port: int, rtt: float) -> Iterator[int]:
    """The link emulator in front of ``port``, on an event loop in a thread; yields its port."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    link = Link(port, rtt=rtt)
    try:
        asyncio.run_coroutine_threadsafe(link.start(), loop).result(TIMEOUT)
        yield link.port
    finally:
        asyncio.run_coroutine_threadsafe(link.aclose(), loop).result(TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)
        loop.close()


def window_size(stream: sync.IOStream) -> int:
    window = stream._core.window
    assert window is not None
    return window.size


def test_sync_read_windows_grow_on_a_long_link_both_ways() -> None:
    seen: dict[str, Any] = {}
    with sync_server() as (sio, url):
        streams = sync.ss(sio)

        @streams.on("upload")
        def upload(sid: str, stream: sync.IOStream) -> int:
            size = sum(len(chunk) for chunk in stream)
            seen["upload window"] = window_size(stream)
            return size

        @streams.on("download")
        def download(sid: str) -> sync.IOStream:
            stream = sync.create_stream()
            sio.start_background_task(stream.end, b"d" * SIZE)
            return stream

        port = int(url.rsplit(":", 1)[1])
        with long_link(port, rtt=0.06) as link_port, sync_client(url) as client:
            client_streams = sync.ss(client)
            client.connect(f"http://127.0.0.1:{link_port}", transports=["websocket"])
            up = sync.create_stream()
            sender = threading.Thread(target=up.end, args=(b"u" * SIZE,))
            sender.start()
            assert client_streams.call("upload", up, timeout=TIMEOUT) == SIZE
            sender.join(TIMEOUT)
            down = client_streams.call("download", timeout=TIMEOUT)
            assert sum(len(chunk) for chunk in down) == SIZE
            seen["download window"] = window_size(down)
            client.disconnect()
    # 8 chunks of 256 KiB per 60 ms round trip is 35 MB/s, below what loopback carries: the
    # windows were the limit, and grew.
    assert seen["upload window"] > DEFAULT_WINDOW, seen
    assert seen["download window"] > DEFAULT_WINDOW, seen
