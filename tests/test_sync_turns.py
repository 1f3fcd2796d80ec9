"""The sync driver's stall checks (sio_stream.core._turns): an upload finishes beside streams
whose writers went quiet after one chunk, holding the whole connection window, as with the
asyncio driver (tests/test_turns.py). Progress, not speed, is asserted."""

from __future__ import annotations

import threading

from sio_stream import sync
from tests.sync_support import sync_client, sync_server

TIMEOUT = 120.0
SIZE = 8 * 1024 * 1024


def test_sync_stream_moves_beside_quiet_writers_that_hold_the_window() -> None:
    first = threading.Event()
    with sync_server() as (sio, url):
        streams = sync.ss(sio)

        @streams.on("quiet")
        def quiet(sid: str, stream: sync.IOStream) -> None:
            chunks = iter(stream)
            next(chunks)  # one chunk; then the reader keeps reading while its writer is quiet
            first.set()
            for _ in chunks:
                pass

        @streams.on("upload")
        def upload(sid: str, stream: sync.IOStream) -> int:
            return sum(len(chunk) for chunk in stream)

        with sync_client(url) as client:
            client_streams = sync.ss(client)
            client.connect(url, transports=["websocket"])
            writers = []
            for _ in range(8):
                writer = sync.create_stream()
                client_streams.emit("quiet", writer)
                writer.write(b"q" * 1024)
                writers.append(writer)
            assert first.wait(TIMEOUT)
            up = sync.create_stream()
            sender = threading.Thread(target=up.end, args=(b"u" * SIZE,))
            sender.start()
            assert client_streams.call("upload", up, timeout=TIMEOUT) == SIZE
            sender.join(TIMEOUT)
            for writer in writers:
                writer.end()
            client.disconnect()
