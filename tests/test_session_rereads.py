"""Negotiated ``resume`` for a stream whose carrying event is lost in a drop (issue 21), end to
end: an AsyncServer and an AsyncClient through ``benchmarks/link.py``'s cutting relay. The
client emits ``fetch`` with a fresh stream that it reads and the server writes into; its
reader has asked for credit; the cut loses the event with those reads. After the resume the
event goes again and the download completes, handled once (see test_session_rereads_core.py
for the cases at the core)."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from sio_stream import IOStream, create_stream
from tests.support import wait_for
from tests.test_session_resume import empty, nothing_retained, session

pytestmark = pytest.mark.anyio

#: A long delay line (0.2 s each way): the cut right after the emit always catches the event
#: and the reads still on their way, however busy the machine.
RTT = 0.4


async def test_a_download_whose_event_is_lost_in_a_drop_completes_after_the_resume() -> None:
    async with session(rtt=RTT) as setup:
        data = os.urandom(3 * 1024 * 1024)
        runs: list[str] = []

        @setup.streams.on("fetch")
        async def fetch(sid: str, name: str, stream: IOStream) -> None:
            runs.append(name)
            await stream.end(data)

        stream = create_stream()
        reading = asyncio.ensure_future(stream.read())
        await setup.client_streams.emit("fetch", "a", stream)
        core = stream._core
        await wait_for(lambda: core.window is not None and core.window.outstanding > 0)
        assert setup.link.statistics().up.in_flight > 0  # the event and the reads, on the wire
        assert setup.link.cut() == 1
        assert runs == []  # the event never reached the server
        received = await asyncio.wait_for(reading, 60)
        assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()
        assert runs == ["a"]
        assert setup.client_streams.statistics().resumes == 1
        await wait_for(lambda: empty(setup) and nothing_retained(setup), 30)
