"""tests/test_waiting_acks_live.py checks that uploads taking turns arrive whole through real
python-socketio, but passes as well when no read of 0 credits is sent at all. This one counts
them where they land, at the client's writer: 48 uploads of 2 MiB behind the server's 4 MiB
connection window wait for turns, and their readers say what arrived (about 31 such reads in a
run; the count is checked against at least one, so that the load of the machine cannot move the
outcome). Each is applied: the writer keeps nothing once the streams ended."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sio_stream import create_stream
from sio_stream.core._core import ProtocolCore

pytestmark = pytest.mark.anyio

CHUNK = 512 * 1024  # the defaults: 512 KiB chunks, a connection window of 4 MiB
STREAMS = 48
SIZE = 4 * CHUNK


async def test_readers_waiting_for_their_turn_tell_the_writer_what_arrived(
    pair: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_core = pair.client_streams._connection(None).core
    acknowledgements: list[int] = []
    receive_read = ProtocolCore.receive_read

    def counted(
        self: ProtocolCore, stream_id: Any, size: Any = None, count: Any = 1, report: Any = None
    ) -> None:
        if self is client_core and count == 0 and isinstance(report, dict):
            acknowledgements.append(report.get("received", -1))
        receive_read(self, stream_id, size, count, report)

    monkeypatch.setattr(ProtocolCore, "receive_read", counted)

    @pair.server_streams.on("upload")
    async def upload(sid: str, stream: Any) -> int:
        return sum([len(chunk) async for chunk in stream])

    async def one(number: int) -> Any:
        stream = create_stream()

        async def write() -> None:
            piece = bytes([number]) * (CHUNK // 2)
            for _ in range(SIZE // len(piece)):
                await stream.write(piece)
            await stream.end()

        return await pair.client_streams.call("upload", stream, writer=write(), timeout=60)

    answers = await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(STREAMS))), 120)
    assert answers == [SIZE] * STREAMS
    assert acknowledgements, "no read of 0 credits reached the writer"
    # Each says a chunk's worth or more arrived (never the 32 KiB floor chunk alone).
    assert all(CHUNK <= received <= SIZE for received in acknowledgements), acknowledgements
    assert sum(c.retained for c in pair.client_streams.statistics().connections) == 0
