"""Negotiated ``resume`` when the client sees the drop first: its connection died on the way
(``Link.strand``: the client's socket is reset, the server's left open and silent, as after a
NAT lost its state or a phone moved to another network; or bytes still draining toward the
server behind the close), so the client is back, with its session's current token, while the
server still takes the old connection for alive. The session resumes on the new connection, the
old one is closed, and the stream arrives intact (it was refused as "session in use" before,
failing every stream of the session). Asyncio and sync servers; the glue's rule is one."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest

from sio_stream import create_stream, sync
from tests.support import wait_for
from tests.sync_support import eventually
from tests.test_session_resume import session
from tests.test_sync_resume import PIECE, sync_session

MiB = 1024 * 1024


def received(streams: Any, sid: str, stream_id: str) -> int:
    """Bytes the server's record of ``sid`` received on ``stream_id`` (-1: not there)."""
    connection = streams._connections.get(sid)
    stream = connection.core.streams.get(stream_id) if connection is not None else None
    return -1 if stream is None else int(stream.received_units)


@pytest.mark.anyio
async def test_a_client_back_before_the_server_saw_the_drop_takes_its_session_over() -> None:
    async with session() as setup:
        first, second = os.urandom(MiB), os.urandom(MiB)
        stream = create_stream()
        await setup.client_streams.emit("upload", stream)
        await stream.write(first)
        await wait_for(lambda: received(setup.streams, setup.sids[0], stream.id) == MiB, 30)
        old_sid = setup.sids[0]
        assert setup.link.strand() == 1
        # The client reconnects and resumes while the server still holds the old connection.
        await wait_for(lambda: setup.client_streams.statistics().resumes == 1, 30)
        assert setup.streams.statistics().resumes == 1
        await stream.write(second)
        await stream.end()
        await wait_for(lambda: bool(setup.uploads), 30)
        assert setup.uploads == [(2 * MiB, hashlib.sha256(first + second).hexdigest())]
        # The stale connection was closed by the server, not left to its ping timeout.
        await wait_for(lambda: not setup.server.manager.is_connected(old_sid, "/"), 30)
        assert len(setup.sids) == 2


def test_a_sync_server_takes_a_session_over_from_a_stale_connection() -> None:
    with sync_session() as setup:
        data = os.urandom(2 * MiB)
        stream = sync.create_stream()
        setup.client_streams.emit("upload", stream)
        for i in range(0, MiB, PIECE):
            stream.write(data[i : i + PIECE], timeout=30)
        eventually(lambda: received(setup.streams, setup.sids[0], stream.id) == MiB, 30)
        old_sid = setup.sids[0]
        assert setup.link.strand() == 1
        eventually(lambda: setup.client_streams.statistics().resumes == 1, 30)
        assert setup.streams.statistics().resumes == 1
        for i in range(MiB, len(data), PIECE):
            stream.write(data[i : i + PIECE], timeout=30)
        stream.end(timeout=30)
        assert setup.done.wait(30)
        assert setup.results == [(len(data), hashlib.sha256(data).hexdigest())]
        eventually(lambda: not setup.server.manager.is_connected(old_sid, "/"), 30)
        assert len(setup.sids) == 2
