"""A far node's gate and a client that drops with its session kept (negotiated ``resume``):
node A sends a client of node B stream-less events (no stream, so A holds no stream of that
client and gets no ``suspend`` when it drops), the client stops reading its socket, B tells A
``full``, and then the client's transport drops. B keeps the session for ``resume_timeout``;
the queue A waited for went with the dead transport, so A must not go on waiting for it
(sio_stream.cluster._gate). Real redis-server, two nodes in this process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import socketio

from benchmarks.stall_relay import stall_relay
from sio_stream import HandlerError, ss
from sio_stream.cluster import ClusterNode, cluster_for
from tests.support import start_server, tasks_end_while_the_loop_runs, wait_for  # noqa: F401 (autouse)

pytestmark = pytest.mark.anyio

#: Far longer than the test: the session outlives it, so only the drop can open A's gate.
RESUME_TIMEOUT = 3600
PIECE = 256 * 1024
#: What A emits: well above what B's queue (4 MiB), A's window toward B (4 MiB) and the relay's
#: buffers take, so A's record for the client waits for B's queue, however the machine runs.
PIECES = 96


@dataclass
class Node:
    sio: socketio.AsyncServer
    runner: Any
    url: str

    @property
    def cluster(self) -> ClusterNode:
        node = cluster_for(self.sio)
        assert node is not None
        return node


@contextlib.asynccontextmanager
async def two_nodes(redis_url: str) -> AsyncIterator[tuple[Node, Node]]:
    started: list[Node] = []
    try:
        for _ in range(2):
            manager = socketio.AsyncRedisManager(redis_url)
            sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)
            ss(sio, resume_timeout=RESUME_TIMEOUT)
            runner, url = await start_server(sio)
            started.append(Node(sio, runner, url))
            await started[-1].cluster.ready()
        yield started[0], started[1]
    finally:
        for node in started:
            await node.cluster.close()
            await node.sio.shutdown()  # ends the suspended session
            await node.runner.cleanup()


async def test_a_dropped_client_opens_the_gate_of_a_node_that_sent_it_only_events(redis_url: str) -> None:
    async with two_nodes(redis_url) as (a, b), stall_relay(int(b.url.rsplit(":", 1)[1])) as relay:
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
