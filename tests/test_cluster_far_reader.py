"""A client of one node that grants credit and stops reading its socket, while another node
writes to it (issue 20 across nodes): the client's node must not queue for it everything the
writer's credit allows. Node A holds the stream, node B forwards its packets to its client; B
tells A when python-engineio's queue for that client is full, and A's sender for it waits until
B says it drained (sio_stream.cluster._gate). Real redis-server, two nodes in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio

from benchmarks.stall_relay import StallRelay, stall_relay
from sio_stream import StreamBrokenError, create_stream, ss
from sio_stream.cluster._node import DEFAULT_MAX_IN_FLIGHT
from sio_stream.glue._unsent import MAX_UNSENT
from tests.support import tasks_end_while_the_loop_runs, wait_for  # noqa: F401 (autouse fixture)
from tests.test_cluster import Node, digest, nodes  # noqa: F401 (fixtures)

pytestmark = pytest.mark.anyio

CHUNK = 512 * 1024
#: What the stalled client grants and node A writes: one read per chunk, as a JavaScript reader
#: sends them (a plain peer: its credit is clamped at 1,024 reads, far above this).
SIZE = 128 * CHUNK
#: What B may hold for the stalled client: the transport's bound, plus what was on its way from
#: A when B said it was full (A's window toward B), plus a few chunks crossing the gate.
BOUND = MAX_UNSENT + DEFAULT_MAX_IN_FLIGHT + 4 * CHUNK


def queued_for(node: Node, sid: str) -> int:
    """Bytes waiting in ``node``'s python-engineio queue for client ``sid`` (read from the
    queue itself, whatever sio_stream counts)."""
    eio_sid = node.sio.manager.eio_sid_from_sid(sid, "/")
    queue = node.sio.eio.sockets[eio_sid].queue
    items = list(queue._queue)
    return sum(len(p.data) for p in items if p is not None and isinstance(p.data, bytes | str))


@dataclass
class Stalled:
    """A raw python-socketio client of B (no sio_stream: it grants what it likes) behind a relay
    that can stop its downstream: a client that stops reading its socket."""

    raw: socketio.AsyncClient
    relay: StallRelay
    sid: str = ""
    announced: list[str] = field(default_factory=list)
    received: list[int] = field(default_factory=lambda: [0])
    ends: list[str] = field(default_factory=list)
    #: Reading again, as a JavaScript reader does: one read per chunk received (a relay may cut
    #: the data in more chunks than the credit granted at first).
    reading: bool = False

    async def stall_and_grant(self) -> str:
        """Once a stream is announced: stop reading the socket, grant credit for ``SIZE``."""
        await wait_for(lambda: bool(self.announced), timeout=30)
        (stream_id,) = self.announced
        self.relay.stop_downstream()
        for _ in range(SIZE // CHUNK):
            await self.raw.emit("$stream-read", (stream_id, CHUNK))
        return stream_id


@contextlib.asynccontextmanager
async def stalled_client(a: Node, b: Node) -> AsyncIterator[Stalled]:
    async with stall_relay(int(b.url.rsplit(":", 1)[1])) as relay:
        client = Stalled(socketio.AsyncClient(reconnection=False), relay)
        raw = client.raw

        @raw.on("$stream")
        def on_stream(event: str, placeholder: dict[str, Any], *rest: Any) -> None:
            client.announced.append(placeholder["$stream"])

        @raw.on("$stream-write")
        async def on_write(stream_id: str, chunk: Any, *rest: Any) -> None:
            client.received[0] += len(chunk)
            if client.reading:
                await raw.emit("$stream-read", (stream_id, CHUNK))

        @raw.on("$stream-end")
        def on_end(stream_id: str, *rest: Any) -> None:
            client.ends.append(stream_id)

        await raw.connect(relay.url, transports=["websocket"])
        try:
            sid = raw.get_sid()
            assert sid is not None
            client.sid = sid
            await wait_for(lambda: a.cluster.remote_node("/", sid) is not None)
            yield client
        finally:
            relay.resume_downstream()
            if raw.connected:
                await raw.disconnect()


def producer(stream: Any, written: list[int]) -> asyncio.Future[None]:
    """Write ``SIZE`` bytes to ``stream`` and end it, counting in ``written``."""

    async def produce() -> None:
        piece = bytes(CHUNK)
        while written[0] < SIZE:
            await stream.write(piece)
            written[0] += len(piece)
        await stream.end()

    return asyncio.ensure_future(produce())


@pytest.mark.parametrize("writer", ["node A", "a client of A", "a room"])
async def test_a_stalled_client_of_the_far_node_holds_the_writer_back(nodes: Any, writer: str) -> None:  # noqa: F811
    """The writer is node A's application, or a client of A whose stream a handler on A relays
    to the client of B (the relay's record for that client waits the same way), or node A's
    application sending to a room whose member is the client of B (B relays the stream of the
    link between the nodes to its member: B's own record for it waits for its queue, and the
    link's credit holds A back)."""
    a, b = await nodes(), await nodes()
    async with stalled_client(a, b) as client:
        sid = client.sid
        stream = create_stream()
        holder = a  # the node whose record for the client waits
        if writer == "a room":

            @b.sio.on("join")
            async def join(member: str, room: str) -> bool:
                await b.sio.enter_room(member, room)
                return True

            assert await client.raw.call("join", "r", timeout=30) is True
            a.streams.emit("file", stream, to="r")
            holder = b
        elif writer == "node A":
            a.streams.emit("file", stream, to=sid)
        else:
            sender, _ = await nodes.client(a, [])

            @a.streams.on("send-to")
            async def send_to(_sid: str, incoming: Any, target: str) -> None:
                a.streams.emit("file", incoming, to=target)

            ss(sender).emit("send-to", stream, sid)
        stream_id = await client.stall_and_grant()
        written = [0]
        writing = producer(stream, written)
        record = holder.streams._connections[sid]
        # Either A sent everything into B's queue (what it did), or A's sender for that client
        # waits for B's transport: the state it reaches however slow the machine is.
        await wait_for(lambda: written[0] >= SIZE or record.waiting_for_transport, timeout=60)
        held = queued_for(b, sid)
        assert held <= BOUND, f"B queued {held} bytes for a client that reads nothing"
        assert written[0] < SIZE

        # Another client of B gets a whole stream from A meanwhile: the link between the nodes
        # is not blocked by the stalled one.
        other, other_sid = await nodes.client(b, [a])
        data = bytes(range(256)) * (16 * 1024)  # 4 MiB

        @ss(other).on("file")
        async def on_file(incoming: Any) -> str:
            return digest(await incoming.read())

        second = create_stream()
        answer = asyncio.ensure_future(a.streams.call("file", second, to=other_sid, timeout=120))
        for i in range(0, len(data), 200_000):
            await second.write(data[i : i + 200_000])
        await second.end()
        assert await asyncio.wait_for(answer, 120) == digest(data)
        # Whatever was still on its way to B has landed by now: still bounded.
        held = queued_for(b, sid)
        assert held <= BOUND, f"B queued {held} bytes for a client that reads nothing"
        assert record.waiting_for_transport and written[0] < SIZE

        # The client reads again: every byte arrives, and the stream ends.
        client.reading = True
        client.relay.resume_downstream()
        await asyncio.wait_for(writing, 120)
        await wait_for(lambda: client.received[0] >= SIZE and stream_id in client.ends, timeout=120)
        assert client.received[0] == SIZE
        assert not record.waiting_for_transport


async def test_a_stalled_client_that_goes_away_frees_both_nodes(nodes: Any) -> None:  # noqa: F811
    """The client's connection drops while A waits for B's queue: A's writer fails ("Connection
    aborted", on B's ``leave``), and neither node keeps anything of the gate."""
    a, b = await nodes(), await nodes()
    async with stalled_client(a, b) as client:
        sid = client.sid
        stream = create_stream()
        a.streams.emit("file", stream, to=sid)
        await client.stall_and_grant()
        writing = producer(stream, [0])
        record = a.streams._connections[sid]
        await wait_for(lambda: record.waiting_for_transport, timeout=60)
        assert a.cluster.gates.is_closed("/", sid) and b.cluster.gates._told
        await client.relay.aclose()  # its TCP connections close: B sees the client go
        with pytest.raises(StreamBrokenError, match="Connection aborted"):
            await asyncio.wait_for(writing, 60)
        await wait_for(lambda: not a.cluster.gates.is_closed("/", sid) and not b.cluster.gates._told)
