"""A far node's gate and a client that drops with its session kept (negotiated ``resume``):
node A sends a client of node B stream-less events (no stream, so A holds no stream of that
client and gets no ``suspend`` when it drops), the client stops reading its socket, B tells A
``full``, and then the client's transport drops. B keeps the session for ``resume_timeout``;
the queue A waited for went with the dead transport, so A must not go on waiting for it
(sio_stream.cluster._gate). Real redis-server, two nodes in this process."""

from __future__ import annotations

import contextlib

import pytest
import socketio

from benchmarks.stall_relay import stall_relay
from sio_stream import HandlerError, ss
from tests.support import tasks_end_while_the_loop_runs, wait_for  # noqa: F401 (autouse)
from tests.test_cluster import nodes  # noqa: F401 (a fixture)

pytestmark = pytest.mark.anyio

#: Far longer than the test: the session outlives it, so only the drop can open A's gate.
RESUME_TIMEOUT = 3600
PIECE = 256 * 1024
#: What A emits: well above what B's queue (4 MiB), A's window toward B (4 MiB) and the relay's
#: buffers take, so A's record for the client waits for B's queue, however the machine runs.
PIECES = 96


async def test_a_dropped_client_opens_the_gate_of_a_node_that_sent_it_only_events(nodes) -> None:  # noqa: F811
    a, b = await nodes(resume_timeout=RESUME_TIMEOUT), await nodes(resume_timeout=RESUME_TIMEOUT)
    async with stall_relay(int(b.url.rsplit(":", 1)[1])) as relay:
        client = socketio.AsyncClient(reconnection=False)
        client_streams = ss(client, resume_timeout=RESUME_TIMEOUT)
        try:
            await client.connect(relay.url, transports=["websocket"])
            await wait_for(lambda: client_streams._connections[None].token is not None, 30)
            sid = client.get_sid()
            assert sid is not None
            await wait_for(lambda: a.cluster.remote_node("/", sid) == b.cluster.id, 30)

            relay.stop_downstream()
            streams = ss(a.sio)
            for _ in range(PIECES):
                streams.emit("blob", bytes(PIECE), to=sid)
            record = streams._connections[sid]
            await wait_for(lambda: record.waiting_for_transport, 60)
            assert a.cluster.gates.is_closed("/", sid)

            await relay.aclose()  # the client's transport drops; B keeps its session
            await wait_for(lambda: b.cluster.sessions.is_quiet("/", sid), 60)
            # The queue A waited for is gone: A's record sends again (what it sends is
            # dropped on B, as anything sent to a suspended session that holds no stream).
            await wait_for(lambda: not a.cluster.gates.is_closed("/", sid), 60)
            assert not record.waiting_for_transport
            await wait_for(lambda: not record.core.outbox, 60)  # A holds none of those events
            # A later call to that sid is answered at once: the event was lost with the drop.
            with pytest.raises(HandlerError, match="lost with a dropped connection"):
                await streams.call("ping", to=sid, timeout=60)
            assert b.cluster.sessions.is_quiet("/", sid), "the session ended: that opened the gate"
        finally:
            with contextlib.suppress(Exception):
                await client.disconnect()
