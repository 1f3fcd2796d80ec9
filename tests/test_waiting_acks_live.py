"""Many uploads taking turns on one real connection (loopback, resume on as ss() sets it): the
reads of 0 credits that tell a writer what its waiting stream's reader received go through
python-socketio to a real writer, which forgets that much and fails nothing. (The bound on what
the writer keeps is counted on two cores back to back: tests/test_waiting_acks.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sio_stream import create_stream

pytestmark = pytest.mark.anyio

CHUNK = 512 * 1024  # the defaults: 512 KiB chunks, a connection window of 4 MiB
STREAMS = 48
SIZE = 4 * CHUNK


async def test_many_uploads_taking_turns_arrive_whole_and_leave_nothing_kept(pair):
    received: list[bytes] = []

    @pair.server_streams.on("upload")
    async def upload(sid: str, stream: Any) -> int:
        parts = [chunk async for chunk in stream]
        received.append(b"".join(parts))
        return len(received[-1])

    client = pair.client_streams

    async def one(number: int) -> Any:
        stream = create_stream()

        async def write() -> None:
            piece = bytes([number]) * (CHUNK // 2)
            for _ in range(SIZE // len(piece)):
                await stream.write(piece)
            await stream.end()

        return await client.call("upload", stream, writer=write(), timeout=60)

    answers = await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(STREAMS))), 120)
    assert answers == [SIZE] * STREAMS
    assert sorted(received) == [bytes([n]) * SIZE for n in range(STREAMS)]
    assert sum(c.retained for c in client.statistics().connections) == 0
