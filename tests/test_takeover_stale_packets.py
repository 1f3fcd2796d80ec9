"""After a takeover (tests/test_resume_takeover.py) the old connection may still deliver packets
until the server's close of it takes effect: bytes that were draining toward the server behind
the client's close. They were sent on a transport the session has left, and the client sends
again, on its resumed session, whatever the resume answer says did not arrive: a stream event
from the old connection must not reach the application (it came twice, the first copy with a
stream that then failed). The test delivers one such packet through python-socketio's own
receive path, on the old connection's Engine.IO session, right before the server closes it."""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

import pytest

from sio_stream import IOStream, create_stream
from tests.support import wait_for
from tests.test_session_resume import session

MiB = 1024 * 1024


@pytest.mark.anyio
async def test_a_stream_event_from_a_taken_over_connection_is_not_handled() -> None:
    async with session() as setup:
        probes: list[str] = []

        @setup.streams.on("probe")
        async def probe(sid: str, stream: IOStream) -> None:
            probes.append(sid)

        injected = asyncio.Event()
        drop_peer = setup.streams._drop_peer
        tasks: set[asyncio.Task[Any]] = set()

        def stale_packet_then_close(peer: Any) -> None:
            async def deliver() -> None:
                eio_sid = setup.server.manager.eio_sid_from_sid(peer, "/")
                await setup.server._handle_eio_message(eio_sid, '2["$stream","probe",{"$stream":"stale"}]')
                injected.set()
                drop_peer(peer)  # the event's handler task was made first: it runs first

            task = asyncio.ensure_future(deliver())
            tasks.add(task)

        setup.streams._drop_peer = stale_packet_then_close
        data = os.urandom(2 * MiB)
        stream = create_stream()
        await setup.client_streams.emit("upload", stream)
        await stream.write(data[:MiB])
        old_sid = setup.sids[0]
        await wait_for(lambda: setup.streams._connections[old_sid].core.streams, 30)
        assert setup.link.strand() == 1
        await wait_for(lambda: setup.client_streams.statistics().resumes == 1, 30)
        await asyncio.wait_for(injected.wait(), 30)
        await wait_for(lambda: not setup.server.manager.is_connected(old_sid, "/"), 30)
        await stream.write(data[MiB:])
        await stream.end()
        await wait_for(lambda: bool(setup.uploads), 30)
        assert setup.uploads == [(len(data), hashlib.sha256(data).hexdigest())]
        assert probes == []
        assert old_sid not in setup.streams._connections
        await wait_for(lambda: not setup.streams._stale, 30)  # forgotten with its disconnect
