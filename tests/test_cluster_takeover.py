"""A session taken over on a cluster node (see tests/test_resume_takeover.py): the client of
node B is back, with its session's current token, while B still takes its old connection for
alive (``Link.strand``). Node A holds a stream whose other end is that client (its packets
cross Redis): the takeover must move A's record to the client's new sid as a seen drop does,
and the old connection's disconnect that follows must not tell A the client left."""

from __future__ import annotations

import hashlib
import os

import pytest

from sio_stream import create_stream
from tests.support import tasks_end_while_the_loop_runs, wait_for
from tests.test_cluster_resume_forwarded import PIECE, MiB, connect, two_nodes

pytestmark = pytest.mark.anyio

__all__ = ["tasks_end_while_the_loop_runs"]  # autouse: leftover tasks end while the loop runs


async def test_a_stream_from_another_node_survives_a_takeover(redis_url: str) -> None:
    async with two_nodes(redis_url) as setup:
        client = await connect(setup, setup.b)
        old_sid = client.sid
        data = os.urandom(2 * MiB)
        stream = create_stream()
        await setup.a.streams.emit("file", stream, len(data), to=client.sid)
        await stream.write(data[:MiB])
        core = client.streams._connections[None].core
        await wait_for(lambda: any(s.received_units == MiB for s in core.streams.values()), 30)
        assert client.link.strand() == 1
        await wait_for(lambda: client.resumes() == 1, 30)
        # The old connection is closed by node B (not left to its ping timeout).
        await wait_for(lambda: not setup.b.sio.manager.is_connected(old_sid, "/"), 30)
        for i in range(MiB, len(data), PIECE):
            await stream.write(data[i : i + PIECE])
        await stream.end()
        await wait_for(lambda: client.received, 30)
        assert client.received == [hashlib.sha256(data).hexdigest()]
        assert stream.error is None
        await wait_for(lambda: client.sid in setup.a.streams._connections, 30)
