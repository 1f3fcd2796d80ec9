"""Session resume in a cluster: two nodes joined by a real redis-server, a client of node B
through ``benchmarks/link.py``'s cutting relay. A client that reconnects to its own node resumes
the streams local to that node; one that lands on the other node is refused
(``ResumeRefusedError``) and gets nothing of the session (see docs/guides/nodes.md, "Sticky
sessions"). Streams forwarded from the other node: tests/test_cluster_resume_forwarded.py."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio

import sio_stream
from benchmarks.link import Link
from sio_stream import (
    ConnectionAbortedStreamError,
    IOStream,
    ResumeRefusedError,
    StreamError,
    create_stream,
    ss,
)
from sio_stream.cluster import ClusterNode, cluster_for
from sio_stream.core._sent_events import SentEvents
from sio_stream.core._streamcore import Outgoing
from tests.support import start_server, wait_for
from tests.test_session_resume import tolerate_socketio_cut_races

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
PIECE = 256 * 1024


def record_file_digests(streams: Any, received: list[Any]) -> None:
    """On ``file`` events of ``streams``: each stream's SHA-256 (hex) once it ended, or the
    error that failed it, appended to ``received``."""

    @streams.on("file")
    async def file(stream: IOStream, size: int) -> None:
        data = bytearray()
        try:
            async for chunk in stream:
                data += chunk
        except StreamError as exc:
            received.append(exc)
            return
        received.append(hashlib.sha256(data).hexdigest())


@dataclass
class Node:
    sio: socketio.AsyncServer
    runner: Any
    url: str
    sids: list[str] = field(default_factory=list)
    uploads: list[Any] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def cluster(self) -> ClusterNode:
        node = cluster_for(self.sio)
        assert node is not None
        return node


async def start_node(redis_url: str) -> Node:
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=socketio.AsyncRedisManager(redis_url))
    streams = ss(sio, resume_timeout=30)
    runner, url = await start_server(sio)
    node = Node(sio, runner, url)

    @sio.on("connect")
    async def connect(sid: str, environ: Any, auth: Any = None) -> None:
        node.sids.append(sid)
        await sio.enter_room(sid, "room")

    @streams.on("upload")
    async def upload(sid: str, stream: IOStream) -> None:
        digest, size = hashlib.sha256(), 0
        try:
            async for chunk in stream:
                digest.update(chunk)
                size += len(chunk)
        except StreamError as exc:
            node.uploads.append(exc)
            return
        node.uploads.append((size, digest.hexdigest()))

    await node.cluster.ready()
    return node


@dataclass
class Cluster:
    a: Node
    b: Node
    client: socketio.AsyncClient
    client_streams: Any
    link: Link
    received: list[Any] = field(default_factory=list)


@contextlib.asynccontextmanager
async def cluster(redis_url: str) -> AsyncIterator[Cluster]:
    a, b = await start_node(redis_url), await start_node(redis_url)
    client = socketio.AsyncClient(reconnection_delay=0.05, reconnection_delay_max=0.2)
    client_streams = ss(client, resume_timeout=30)
    try:
        with tolerate_socketio_cut_races():
            async with Link(b.port, rtt=0.01) as link:
                setup = Cluster(a, b, client, client_streams, link)

                record_file_digests(client_streams, setup.received)

                await client.connect(link.url, transports=["websocket"])
                await wait_for(lambda: client_streams._connections[None].token is not None)
                sid = client.get_sid()
                await wait_for(lambda: a.cluster.remote_node("/", sid) == b.cluster.id)
                try:
                    yield setup
                finally:
                    # Before the link closes: closing it first is a drop, and the node would
                    # rightly keep the session (and what it holds for a replay) for its
                    # resume_timeout, beyond the test.
                    with contextlib.suppress(Exception):
                        await client.disconnect()
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()
        for node in (a, b):
            await node.cluster.close()
            await node.sio.shutdown()
            await node.runner.cleanup()


async def send(
    stream: IOStream, data: bytes, cut_at: tuple[int, ...] = (), setup: Cluster | None = None
) -> None:
    """Write ``data`` and end; at each offset of ``cut_at``, cut the client's connection once it
    is back from the previous cut (its node counts the resumes)."""
    for i in range(0, len(data), PIECE):
        if i in cut_at:
            assert setup is not None
            done = cut_at.index(i)
            await wait_for(lambda done=done: ss(setup.b.sio).statistics().resumes == done, 30)
            assert setup.link.cut() == 1  # mid-transfer: chunks and credit are in flight
        await stream.write(data[i : i + PIECE])
    await stream.end()


async def test_streams_local_to_the_node_resume_when_the_client_returns_to_it(redis_url: str) -> None:
    async with cluster(redis_url) as setup:
        data = os.urandom(4 * MiB)
        upload = create_stream()
        await setup.client_streams.emit("upload", upload)
        await send(upload, data, (MiB, 3 * MiB), setup)
        await wait_for(lambda: setup.b.uploads, 30)
        assert setup.b.uploads == [(len(data), hashlib.sha256(data).hexdigest())]
        assert upload.error is None
        assert ss(setup.b.sio).statistics().resumes == 2
        assert len(setup.b.sids) == 3  # each resume rode a new connection to the same node
        # The cluster knows the client under its new sid: node A reaches it through B.
        sid = setup.client.get_sid()
        await wait_for(lambda: setup.a.cluster.remote_node("/", sid) == setup.b.cluster.id)
        again = os.urandom(MiB)
        stream = create_stream()
        await ss(setup.a.sio).emit("file", stream, len(again), to=sid)
        await send(stream, again)
        await wait_for(lambda: setup.received, 30)
        assert setup.received == [hashlib.sha256(again).hexdigest()]


async def test_a_room_stream_from_another_node_resumes_on_the_members_node(redis_url: str) -> None:
    """Node A sends a room one stream per node; node B relays it to its members as streams of
    its own, which resume with the member's session (the link between the nodes never drops)."""
    async with cluster(redis_url) as setup:
        data = os.urandom(3 * MiB)
        stream = create_stream()
        ss(setup.a.sio).emit("file", stream, len(data), to="room")
        await wait_for(lambda: setup.client_streams._connections[None].core.streams)  # delivered
        await send(stream, data, (MiB, 2 * MiB), setup)
        await wait_for(lambda: setup.received, 30)
        assert setup.received == [hashlib.sha256(data).hexdigest()]
        assert stream.error is None
        assert ss(setup.b.sio).statistics().resumes == 2


async def test_a_resumed_room_stream_leaves_nothing_retained(redis_url: str) -> None:
    """What the member's node kept for a replay of the relayed stream is released once the
    member disconnects (its relay stream still waited for the end's answer when data arrived)."""
    before = sio_stream.process_budget().retained
    async with cluster(redis_url) as setup:
        data = os.urandom(3 * MiB)
        stream = create_stream()
        ss(setup.a.sio).emit("file", stream, len(data), to="room")
        await wait_for(lambda: setup.client_streams._connections[None].core.streams)
        await send(stream, data, (MiB, 2 * MiB), setup)
        await wait_for(lambda: setup.received, 30)
    await wait_for(lambda: sio_stream.process_budget().retained <= before, 10)


async def test_a_client_that_lands_on_another_node_is_refused_and_gets_nothing(redis_url: str) -> None:
    async with cluster(redis_url) as setup:
        data = os.urandom(2 * MiB)
        upload = create_stream()
        await setup.client_streams.emit("upload", upload)
        await upload.write(data[:MiB])
        await wait_for(lambda: ss(setup.b.sio).stream_count() == 1)
        setup.link.target = ("127.0.0.1", setup.a.port)  # no sticky session: the next node
        assert setup.link.cut() == 1
        await wait_for(lambda: upload.error is not None, 30)
        assert isinstance(upload.error, ResumeRefusedError)  # a ConnectionAbortedStreamError
        assert "unknown session" in str(upload.error)
        with pytest.raises(ResumeRefusedError):
            await asyncio.wait_for(upload.write(data[MiB:]), 30)
        await wait_for(lambda: len(setup.a.sids) == 1)
        # Nothing of the session reached node A; the client carries on with a fresh one there.
        assert ss(setup.a.sio).stream_count() == 0
        assert setup.a.uploads == []
        fresh = create_stream()
        await setup.client_streams.emit("upload", fresh)
        await send(fresh, data)
        await wait_for(lambda: setup.a.uploads, 30)
        assert setup.a.uploads == [(len(data), hashlib.sha256(data).hexdigest())]
        # Node A told the cluster it refused that session: node B, where it waited, ended it
        # (before, it waited for its resume_timeout); nobody resumed it.
        await wait_for(lambda: setup.b.uploads, 30)
        assert ss(setup.b.sio).statistics().resumes == 0
        assert len(setup.b.uploads) == 1 and isinstance(setup.b.uploads[0], ConnectionAbortedStreamError)
        assert ss(setup.b.sio).statistics().suspended == 0


async def test_events_from_both_nodes_keep_one_numbering_across_a_resume(redis_url: str) -> None:
    """The client counts every event it receives, its node's and those another node forwards:
    an event of its node lost in the drop after a forwarded one must still be sent again."""
    async with cluster(redis_url) as setup:
        sid = setup.client.get_sid()
        first = os.urandom(100_000)
        stream = create_stream()
        await ss(setup.a.sio).emit("file", stream, len(first), to=sid)  # forwarded by node B
        await stream.end(first)
        await wait_for(lambda: setup.received, 30)
        assert setup.received == [hashlib.sha256(first).hexdigest()]
        # Delay what node B sends from now on (3 s, far beyond the cut that follows at once):
        # its next event is on the wire at the cut, and lost. The link delivers in order, so a
        # new connection waits behind those bytes for the rest of the 3 s.
        down = setup.link._down
        assert down is not None
        down.delay = 3.0
        second = os.urandom(MiB)
        local = create_stream()
        await ss(setup.b.sio).emit("file", local, len(second), to=sid)
        connection = ss(setup.b.sio)._connections[sid]
        kept = connection.core.sent_events.kept
        await wait_for(lambda: any(local.id in ids for _n, _e, ids in kept))  # sent: never to arrive
        down.delay = 0.005
        assert setup.link.cut() == 1
        await asyncio.wait_for(local.end(second), 30)
        await wait_for(lambda: len(setup.received) == 2, 30)
        assert setup.received[1] == hashlib.sha256(second).hexdigest()
        assert local.error is None
        assert ss(setup.b.sio).statistics().resumes == 1


def test_another_nodes_events_are_numbered_and_never_sent_again() -> None:
    events = SentEvents()
    ours = [Outgoing("$stream", ("file", {"$stream": f"s{n}"})) for n in range(3)]
    events.record(ours[0], ["s0"])
    events.skip()  # another node's event, between two of ours
    events.record(ours[1], ["s1"])
    events.skip()
    events.record(ours[2], ["s2"])
    assert events.sent == 5
    # The peer got the first two (ours and the forwarded one): ours that follow go again, in
    # order, renumbered from its count as they go out; the forwarded one is not ours to send.
    again = events.unreceived(2)
    assert again == [(ours[1], frozenset({"s1"})), (ours[2], frozenset({"s2"}))]
    assert events.sent == 2
    assert events.unreceived(6) is None  # beyond what was sent: nothing goes again
