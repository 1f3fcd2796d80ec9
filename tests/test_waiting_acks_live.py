"""Many uploads taking turns on one real connection (loopback, resume on as ss() sets it): the
reads of 0 credits that tell a writer what its waiting stream's reader received go through
python-socketio to a real writer, which forgets that much and fails nothing. (The bound on what
the writer keeps is counted on two cores back to back: tests/test_waiting_acks.py.) The first
test passes as well when no read of 0 credits is sent at all; the second counts them where they
land, at the client's writer (about 31 in a run; checked against at least one, so that the load
of the machine cannot move the outcome), and each is applied: the writer keeps nothing once the
streams ended."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from sio_stream import create_stream
from sio_stream.core._core import ProtocolCore
from tests.support import wait_for
from tests.test_session_resume import cut_when_back, session

pytestmark = pytest.mark.anyio

CHUNK = 512 * 1024  # the defaults: 512 KiB chunks, a connection window of 4 MiB
STREAMS = 48
SIZE = 4 * CHUNK


async def upload_all(streams: Any) -> list[Any]:
    """STREAMS uploads of SIZE bytes at once (upload n is byte n, written half a chunk at a
    time) on ``streams``: the server's answers."""

    async def one(number: int) -> Any:
        stream = create_stream()

        async def write() -> None:
            piece = bytes([number]) * (CHUNK // 2)
            for _ in range(SIZE // len(piece)):
                await stream.write(piece)
            await stream.end()

        return await streams.call("upload", stream, writer=write(), timeout=60)

    return list(await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(STREAMS))), 120))


async def test_many_uploads_taking_turns_arrive_whole_and_leave_nothing_kept(pair):
    received: list[bytes] = []

    @pair.server_streams.on("upload")
    async def upload(sid: str, stream: Any) -> int:
        parts = [chunk async for chunk in stream]
        received.append(b"".join(parts))
        return len(received[-1])

    client = pair.client_streams
    assert await upload_all(client) == [SIZE] * STREAMS
    assert sorted(received) == [bytes([n]) * SIZE for n in range(STREAMS)]
    assert sum(c.retained for c in client.statistics().connections) == 0


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

    assert await upload_all(pair.client_streams) == [SIZE] * STREAMS
    assert acknowledgements, "no read of 0 credits reached the writer"
    # Each says a chunk's worth or more arrived (never the 32 KiB floor chunk alone).
    assert all(CHUNK <= received <= SIZE for received in acknowledgements), acknowledgements
    assert sum(c.retained for c in pair.client_streams.statistics().connections) == 0


async def test_uploads_taking_turns_survive_a_cut_link() -> None:
    """The same uploads through a link cut once mid-transfer (resume on): the writers dropped
    what the reads of 0 credits said arrived, and each resumes from what its reader received;
    every upload arrives whole, and nothing stays kept."""
    async with session(rtt=0.01) as setup:
        progress = asyncio.ensure_future(upload_all(setup.client_streams))
        # Half the uploads done: the rest have waited for turns (their writers told what arrived)
        # or are under way.
        await wait_for(lambda: len(setup.uploads) >= STREAMS // 2, 60)
        await cut_when_back(setup, 0)
        answers = await progress
        assert answers == [None] * STREAMS  # the session's upload handler answers nothing
        await wait_for(lambda: len(setup.uploads) == STREAMS, 60)
        assert sorted(setup.uploads) == sorted(
            (SIZE, hashlib.sha256(bytes([n]) * SIZE).hexdigest()) for n in range(STREAMS)
        )
        assert setup.client_streams.statistics().resumes == 1
        assert sum(c.retained for c in setup.client_streams.statistics().connections) == 0
