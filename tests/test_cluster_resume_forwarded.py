"""Forwarded streams across a dropped connection: node A holds a stream whose other end is a
client of node B (its packets cross Redis); each client sits behind ``benchmarks/link.py``'s
relay, which cuts its connection at chosen points (once the previous cut was resumed, never on
a timer). Each client reconnects to its own node (sticky), and every byte arrives exactly once,
in order, in both directions; a client that never comes back fails the stream on the other node
too, typed (see docs/guides/nodes.md, "A dropped connection")."""

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
    HandlerError,
    IOStream,
    ResumeRefusedError,
    StreamError,
    create_stream,
    ss,
    sync,
)
from sio_stream.cluster import ClusterNode, cluster_for
from sio_stream.core._sent_events import SentEvents
from tests.support import start_server, tasks_end_while_the_loop_runs, wait_for
from tests.test_cluster_resume import record_file_digests
from tests.test_session_resume import tolerate_socketio_cut_races

pytestmark = pytest.mark.anyio

__all__ = ["tasks_end_while_the_loop_runs"]  # autouse: leftover tasks end while the loop runs

MiB = 1024 * 1024
PIECE = 256 * 1024


@dataclass
class Node:
    sio: socketio.AsyncServer
    runner: Any
    url: str

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def cluster(self) -> ClusterNode:
        node = cluster_for(self.sio)
        assert node is not None
        return node

    @property
    def streams(self) -> Any:
        return ss(self.sio)


@dataclass
class Client:
    sio: socketio.AsyncClient
    link: Link
    node: Node
    received: list[Any] = field(default_factory=list)  # a digest, or the stream's error
    incoming: asyncio.Queue[IOStream] = field(default_factory=asyncio.Queue)

    @property
    def streams(self) -> Any:
        return ss(self.sio)

    @property
    def sid(self) -> str:
        sid = self.sio.get_sid()
        assert sid is not None
        return sid

    def resumes(self) -> int:
        return int(ss(self.node.sio).statistics().resumes)

    async def cut(self, resumed: int) -> None:
        """Cut the connection once the node has seen ``resumed`` resumes of its sessions."""
        await wait_for(lambda: self.resumes() == resumed, 30)
        assert self.link.cut() == 1


@dataclass
class Setup:
    a: Node
    b: Node
    stack: contextlib.AsyncExitStack
    clients: list[Client] = field(default_factory=list)


async def start_node(redis_url: str, resume_timeout: float) -> Node:
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=socketio.AsyncRedisManager(redis_url))
    ss(sio, resume_timeout=resume_timeout)
    runner, url = await start_server(sio)
    node = Node(sio, runner, url)
    await node.cluster.ready()
    return node


@contextlib.asynccontextmanager
async def two_nodes(redis_url: str, resume_timeout: float = 30) -> AsyncIterator[Setup]:
    a, b = await start_node(redis_url, resume_timeout), await start_node(redis_url, resume_timeout)
    clients: list[Client] = []
    try:
        with tolerate_socketio_cut_races():
            async with contextlib.AsyncExitStack() as stack:
                setup = Setup(a, b, stack, clients)
                yield setup
                # Clients leave before their links close: closing a link first is a drop, and
                # the node would keep the session for its resume_timeout, beyond the test.
                for client in clients:
                    with contextlib.suppress(Exception):
                        await client.sio.disconnect()
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.sio.disconnect()
        for node in (a, b):
            await node.cluster.close()  # before the server shuts down (see tests/support.py)
            await node.sio.shutdown()
            await node.runner.cleanup()


async def connect(setup: Setup, node: Node, resume_timeout: float = 30) -> Client:
    """A client of ``node`` behind its own cutting link, once the other node knows where it is."""
    link = await setup.stack.enter_async_context(Link(node.port, rtt=0.01))
    sio = socketio.AsyncClient(reconnection_delay=0.05, reconnection_delay_max=0.2)
    client = Client(sio, link, node)
    streams = ss(sio, resume_timeout=resume_timeout)

    record_file_digests(streams, client.received)

    @streams.on("fill")
    async def fill(stream: IOStream) -> None:
        client.incoming.put_nowait(stream)  # the test writes it, cutting on the way

    setup.clients.append(client)
    await sio.connect(link.url, transports=["websocket"])
    await wait_for(lambda: streams._connections[None].token is not None)
    sid = client.sid
    for other in (setup.a, setup.b):
        if other is not node:
            await wait_for(lambda other=other: other.cluster.remote_node("/", sid) == node.cluster.id)
    return client


@dataclass
class Delivered:
    setup: Setup
    redis: Link
    client: Client
    stream: IOStream
    data: bytes


@contextlib.asynccontextmanager
async def a_stream_delivered_through_a_redis_link(redis_url: str) -> AsyncIterator[Delivered]:
    """Two nodes reaching Redis through a link (a test raises its delay for the moment that
    matters, so that moment lasts seconds), a client of node B, and a stream of 2 MiB from node A
    to it whose first piece was delivered."""
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    async with Link(port, rtt=0.002) as redis_link:
        url = f"redis://127.0.0.1:{redis_link.port}/0"
        async with two_nodes(url) as setup:
            client = await connect(setup, setup.b)
            data = os.urandom(2 * MiB)
            stream = create_stream()
            await setup.a.streams.emit("file", stream, len(data), to=client.sid)
            await stream.write(data[:PIECE])
            await wait_for(lambda: client.streams._connections[None].core.streams)  # delivered
            yield Delivered(setup, redis_link, client, stream, data)


async def write(stream: IOStream, data: bytes, cuts: dict[int, Client] | None = None) -> None:
    """Write ``data`` and end; at each offset in ``cuts``, cut that client's connection once its
    node resumed every earlier cut of it."""
    done: dict[int, int] = {}
    for i in range(0, len(data), PIECE):
        client = (cuts or {}).get(i)
        if client is not None:
            await client.cut(done.get(id(client), 0))
            done[id(client)] = done.get(id(client), 0) + 1
        await stream.write(data[i : i + PIECE])
    await stream.end()


async def test_a_stream_from_another_node_survives_its_readers_drops(redis_url: str) -> None:
    async with two_nodes(redis_url) as setup:
        client = await connect(setup, setup.b)
        data = os.urandom(4 * MiB)
        stream = create_stream()
        await setup.a.streams.emit("file", stream, len(data), to=client.sid)
        await write(stream, data, {MiB: client, 3 * MiB: client})
        await wait_for(lambda: client.received, 30)
        assert client.received == [hashlib.sha256(data).hexdigest()]
        assert stream.error is None
        assert client.resumes() == 2
        # Node A's record followed the client to its new sid; nothing is left behind.
        await wait_for(lambda: setup.a.streams.stream_count() == 0, 30)
        assert client.sid in setup.a.streams._connections


async def test_a_stream_to_another_node_survives_its_writers_drops(redis_url: str) -> None:
    """The other direction: the client of node B writes, node A reads (the client's bytes are
    forwarded to A); its replay comes from what A reports it received."""
    async with two_nodes(redis_url) as setup:
        client = await connect(setup, setup.b)
        data = os.urandom(4 * MiB)
        stream = create_stream()
        await setup.a.streams.emit("fill", stream, to=client.sid)
        theirs = await asyncio.wait_for(client.incoming.get(), 30)
        writing = asyncio.create_task(write(theirs, data, {MiB: client, 3 * MiB: client}))
        received = await asyncio.wait_for(stream.read(), 60)
        await asyncio.wait_for(writing, 30)
        assert hashlib.sha256(received).hexdigest() == hashlib.sha256(data).hexdigest()
        assert len(received) == len(data)
        assert theirs.error is None and stream.error is None
        assert client.resumes() == 2


async def test_a_relay_across_nodes_survives_drops_of_both_clients(redis_url: str) -> None:
    """A client of node A uploads through a handler on A that relays the stream to a client of
    node B: each drop resumes on its own node, the receiver's through A's record."""
    async with two_nodes(redis_url) as setup:
        receiver = await connect(setup, setup.b)
        sender = await connect(setup, setup.a)

        relayed = asyncio.Event()

        @setup.a.streams.on("send-to")
        async def send_to(sid: str, stream: IOStream, target: str, size: int) -> None:
            await setup.a.streams.emit("file", stream, size, to=target)
            relayed.set()

        data = os.urandom(5 * MiB)
        upload = create_stream()
        await sender.streams.emit("send-to", upload, receiver.sid, len(data))
        # The sender's writes need not wait for the relay (the initial credit covers the first
        # MiB): on busy cores the receiver's first cut came before node A's handler emitted to
        # it, and the emit found the receiver's sid gone. The drops are of a relay, so it first
        # exists, and has reached the receiver: an event that node B forwarded is never sent
        # again after a drop (its streams fail), and with initial credit on (16 MiB) the whole
        # upload went before the receiver had the event ("every recipient left", 6 of 6 runs).
        await asyncio.wait_for(relayed.wait(), 30)
        await wait_for(lambda: receiver.streams._connections[None].core.streams, 30)
        await write(upload, data, {MiB: receiver, 2 * MiB: sender, 3 * MiB: receiver, 4 * MiB: sender})
        await wait_for(lambda: receiver.received, 30)
        assert receiver.received == [hashlib.sha256(data).hexdigest()]
        assert upload.error is None
        assert receiver.resumes() == 2 and sender.resumes() == 2


async def test_what_the_holding_node_keeps_for_the_replay_is_bounded_and_released(redis_url: str) -> None:
    """While the reader is away, node A keeps what it sent and the client did not
    acknowledge: counted in A's budget, within the client's window; given back afterwards."""
    async with two_nodes(redis_url) as setup:
        client = await connect(setup, setup.b)
        reading = asyncio.Event()
        go_on = asyncio.Event()

        @client.streams.on("slow")
        async def slow(stream: IOStream) -> None:
            data = bytearray(await stream.receive(PIECE))
            reading.set()
            await go_on.wait()
            async for chunk in stream:
                data += chunk
            client.received.append(hashlib.sha256(data).hexdigest())

        data = os.urandom(6 * MiB)
        stream = create_stream()
        await setup.a.streams.emit("slow", stream, to=client.sid)
        writing = asyncio.create_task(write(stream, data))
        await asyncio.wait_for(reading.wait(), 30)
        record = setup.a.streams._connections[client.sid]
        # The reader stopped: the writer fills its credit and waits (nothing flows).
        await wait_for(lambda: record.core.statistics(None).retained > 0, 30)
        assert client.link.cut() == 1
        await wait_for(lambda: record.core.suspended, 30)
        retained = record.core.statistics(None).retained
        assert 0 < retained <= 2 * setup.a.streams._config.connection_window
        assert sio_stream.process_budget().retained >= retained  # counted in the budget
        await wait_for(lambda: client.resumes() == 1, 30)
        await wait_for(lambda: not record.core.suspended and not record.core.connecting, 30)
        go_on.set()
        await asyncio.wait_for(writing, 60)
        await wait_for(lambda: client.received, 30)
        assert client.received == [hashlib.sha256(data).hexdigest()]
        await wait_for(lambda: record.core.statistics(None).retained == 0, 30)


async def test_a_reader_that_never_comes_back_fails_the_stream_on_the_other_node(redis_url: str) -> None:
    """Node A keeps the stream suspended while node B keeps the client's session; when that
    session expires (its resume_timeout, run here at once by hand), A's stream fails typed."""
    async with two_nodes(redis_url) as setup:
        client = await connect(setup, setup.b)
        data = os.urandom(4 * MiB)
        stream = create_stream()
        await setup.a.streams.emit("file", stream, len(data), to=client.sid)
        await stream.write(data[:PIECE])
        await wait_for(lambda: client.streams._connections[None].core.streams)  # delivered
        record = setup.a.streams._connections[client.sid]
        client.link.target = ("127.0.0.1", 1)  # nothing listens there: every reconnect fails
        assert client.link.cut() == 1
        await wait_for(lambda: record.core.suspended, 30)  # not failed: it may resume

        async def rest() -> None:
            for i in range(PIECE, len(data), PIECE):
                await stream.write(data[i : i + PIECE])
            await stream.end()

        writing = asyncio.create_task(rest())
        await wait_for(lambda: len(setup.b.streams._suspended) == 1, 30)
        assert not writing.done() and stream.error is None
        session = next(iter(setup.b.streams._suspended))
        setup.b.streams._expire(session)  # what its resume_timeout does
        with pytest.raises(ConnectionAbortedStreamError):
            await asyncio.wait_for(writing, 30)
        await wait_for(lambda: setup.a.streams.stream_count() == 0, 30)
        assert record.core.statistics(None).retained == 0
        client.streams._expire(client.streams._connections[None])  # the client's gives up too
        await wait_for(lambda: client.received, 30)
        assert isinstance(client.received[0], ConnectionAbortedStreamError)


async def test_a_client_that_lands_on_another_node_ends_its_session_on_the_old_one(redis_url: str) -> None:
    """No sticky session: the client comes back to node A, which does not know its session and
    refuses it (``ResumeRefusedError`` on each of its streams; a fresh session there). Node B,
    where the session waits, hears of it and ends the session at once instead of at its
    resume_timeout (an hour here): every stream of it fails typed on every node."""
    async with two_nodes(redis_url, resume_timeout=3600) as setup:
        client = await connect(setup, setup.b)
        uploads: list[Any] = []

        @setup.b.streams.on("upload")
        async def upload_handler(sid: str, stream: IOStream) -> None:
            try:
                await stream.read()
            except StreamError as exc:
                uploads.append(exc)

        data = os.urandom(2 * MiB)
        stream = create_stream()
        await setup.a.streams.emit("file", stream, len(data), to=client.sid)
        await stream.write(data[:PIECE])
        upload = create_stream()
        await client.streams.emit("upload", upload)
        await upload.write(data[:PIECE])
        await wait_for(lambda: len(client.streams._connections[None].core.streams) == 2)
        await wait_for(lambda: setup.b.streams.stream_count() == 1)
        client.link.target = ("127.0.0.1", setup.a.port)
        assert client.link.cut() == 1
        await wait_for(lambda: upload.error is not None and client.received, 30)
        assert isinstance(upload.error, ResumeRefusedError)
        assert isinstance(client.received[0], ResumeRefusedError)

        async def rest() -> None:
            for i in range(PIECE, len(data), PIECE):
                await stream.write(data[i : i + PIECE])
            await stream.end()

        with pytest.raises(ConnectionAbortedStreamError):
            await asyncio.wait_for(rest(), 30)
        await wait_for(lambda: uploads, 30)
        assert isinstance(uploads[0], ConnectionAbortedStreamError)
        assert not setup.b.streams._suspended
        await wait_for(
            lambda: setup.a.streams.stream_count() == 0 and setup.b.streams.stream_count() == 0, 30
        )
        assert setup.b.streams.statistics().resumes == 0


async def test_a_call_from_another_node_gets_its_answer_across_drops(redis_url: str) -> None:
    """Node A calls the client of node B with a stream; the client's handler reads it across
    two drops and answers after them: its node asks for the answer again at the resume (the
    ack python-socketio would have carried belonged to the old connection) and passes it on."""
    async with two_nodes(redis_url) as setup:
        client = await connect(setup, setup.b)

        @client.streams.on("digest")
        async def digest(stream: IOStream) -> str:
            return hashlib.sha256(await stream.read()).hexdigest()

        data = os.urandom(4 * MiB)
        stream = create_stream()
        reply = asyncio.create_task(setup.a.streams.call("digest", stream, to=client.sid))
        await write(stream, data, {MiB: client, 3 * MiB: client})
        assert await asyncio.wait_for(reply, 30) == hashlib.sha256(data).hexdigest()
        assert client.resumes() == 2


async def test_another_nodes_events_await_their_answers_and_lose_them_with_the_event() -> None:
    events = SentEvents()
    answers: list[tuple[str, tuple[Any, ...]]] = []
    first = events.skip(lambda *args: answers.append(("first", args)))
    events.skip(lambda *args: answers.append(("second", args)))
    assert first is not None
    assert events.awaited() == [1, 2]
    # The peer got the first event only: the second (another node's: never sent again) is
    # lost with its answer; the first's answer is awaited, sent again after the resume.
    assert events.unreceived(1) == []
    lost = events.take_lost()
    assert len(lost) == 1
    lost[0]("gone")
    assert answers == [("second", ("gone",))]
    assert events.awaited() == [1]
    assert events.replied(1, ("digest",))
    first("late ack")  # python-socketio's ack after all: the answer came already
    assert answers == [("second", ("gone",)), ("first", ("digest",))]


async def test_a_drop_during_the_resume_leaves_the_streams_to_the_next_one(redis_url: str) -> None:
    """The client's new connection drops while its node waits for the holding node's entries
    (Redis is reached through a link whose delay is raised for that moment, so the wait lasts
    seconds): the holding node moved its record to that connection already, so it is suspended
    again there, and the client's next connection resumes everything."""
    async with a_stream_delivered_through_a_redis_link(redis_url) as delivered:
        setup, client, stream, data = delivered.setup, delivered.client, delivered.stream, delivered.data
        writing = asyncio.create_task(write(stream, data[PIECE:]))
        delivered.redis.set_delay(up=1.0, down=1.0)  # each frame between the nodes: 2 s from now on
        assert client.link.cut() == 1
        sessions = setup.b.cluster.sessions
        await wait_for(lambda: bool(sessions.attempts), 30)  # asked node A; no answer yet
        assert client.link.cut() == 1
        delivered.redis.set_delay(up=0.001, down=0.001)
        await asyncio.wait_for(writing, 60)
        await wait_for(lambda: client.received, 30)
        assert client.received == [hashlib.sha256(data).hexdigest()]
        assert stream.error is None
        assert client.resumes() == 1  # the second connection never resumed
        await wait_for(lambda: not sessions.attempts and not sessions.keys and not sessions.holding, 30)
        assert client.sid in setup.a.streams._connections


async def test_a_stream_in_an_answer_given_after_the_drops_reaches_the_other_node(redis_url: str) -> None:
    """The client answers node A's call() after two drops with a stream of its own: the answer
    comes through the resume (its node asked for it again), and the stream, which node A's
    reads name to the client's node, reaches A whole."""
    async with two_nodes(redis_url) as setup:
        client = await connect(setup, setup.b)
        writers: list[asyncio.Task[None]] = []

        @client.streams.on("echo")
        async def echo(stream: IOStream) -> IOStream:
            data = await stream.read()
            answer = create_stream()
            writers.append(asyncio.create_task(answer.end(data[::-1])))
            return answer

        data = os.urandom(3 * MiB)
        stream = create_stream()
        reply = asyncio.create_task(setup.a.streams.call("echo", stream, to=client.sid))
        await write(stream, data, {MiB: client, 2 * MiB: client})
        answer = await asyncio.wait_for(reply, 30)
        assert await asyncio.wait_for(answer.read(), 30) == data[::-1]
        await asyncio.wait_for(writers[0], 30)
        assert client.resumes() == 2


async def test_streams_both_ways_at_once_survive_five_drops(redis_url: str) -> None:
    """Two streams from node A to the client and two from the client to A, all moving while
    the client's connection is cut five times (each once the previous cut was resumed and more
    bytes moved): every stream arrives whole, no error reaches either side."""
    async with two_nodes(redis_url) as setup:
        client = await connect(setup, setup.b)
        size = 6 * MiB
        downs = [os.urandom(size) for _ in range(2)]
        ups = [os.urandom(size) for _ in range(2)]
        moved = [0]

        async def feed(stream: IOStream, data: bytes) -> None:
            for i in range(0, len(data), PIECE):
                await stream.write(data[i : i + PIECE])
                moved[0] += PIECE
            await stream.end()

        async def drain(stream: IOStream) -> bytes:
            data = bytearray()
            async for chunk in stream:
                data += chunk
                moved[0] += len(chunk)
            return bytes(data)

        tasks = []
        for data in downs:
            stream = create_stream()
            await setup.a.streams.emit("file", stream, len(data), to=client.sid)
            tasks.append(asyncio.create_task(feed(stream, data)))
        reads = []
        for data in ups:
            stream = create_stream()
            await setup.a.streams.emit("fill", stream, to=client.sid)
            theirs = await asyncio.wait_for(client.incoming.get(), 30)
            tasks.append(asyncio.create_task(feed(theirs, data)))
            reads.append(asyncio.create_task(drain(stream)))
        total = sum(map(len, downs)) + 2 * sum(map(len, ups))  # what `moved` counts in the end
        for cut in range(5):
            await wait_for(lambda cut=cut: moved[0] >= (cut + 1) * total // 6 and client.resumes() == cut, 60)
            assert client.link.cut() == 1
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        assert [await asyncio.wait_for(read, 60) for read in reads] == ups
        await wait_for(lambda: len(client.received) == 2, 60)
        assert sorted(client.received) == sorted(hashlib.sha256(d).hexdigest() for d in downs)
        assert client.resumes() == 5
        await wait_for(lambda: setup.a.streams.stream_count() == 0, 30)


async def test_a_sync_client_resumes_a_stream_another_node_holds(redis_url: str) -> None:
    """The sync API's client (python-socketio's ``Client``, in its threads) on node B: node A's
    call() with a stream survives two cuts, and gets the answer given after them."""
    async with two_nodes(redis_url) as setup:
        link = await setup.stack.enter_async_context(Link(setup.b.port, rtt=0.01))
        client = socketio.Client(reconnection_delay=0.05, reconnection_delay_max=0.2)
        streams = sync.ss(client, resume_timeout=30)

        @streams.on("digest")
        def digest(stream: sync.IOStream) -> str:
            return hashlib.sha256(stream.read(timeout=120)).hexdigest()

        await asyncio.to_thread(client.connect, link.url, transports=["websocket"])
        try:
            await wait_for(lambda: streams._connections[None].token is not None)
            sid = client.get_sid()
            assert sid is not None
            await wait_for(lambda: setup.a.cluster.remote_node("/", sid) == setup.b.cluster.id)
            data = os.urandom(4 * MiB)
            stream = create_stream()
            reply = asyncio.create_task(setup.a.streams.call("digest", stream, to=sid))
            for i in range(0, len(data), PIECE):
                if i in (MiB, 3 * MiB):
                    done = i // (2 * MiB)
                    await wait_for(lambda done=done: setup.b.streams.statistics().resumes == done, 30)
                    assert link.cut() == 1
                await stream.write(data[i : i + PIECE])
            await stream.end()
            assert await asyncio.wait_for(reply, 60) == hashlib.sha256(data).hexdigest()
            assert setup.b.streams.statistics().resumes == 2
        finally:
            await asyncio.to_thread(client.disconnect)


async def test_a_call_without_streams_from_another_node_gets_its_answer_across_a_drop(redis_url: str) -> None:
    """Node A's call() carries no stream, and the client answers after a drop: node A's record
    of the client follows the session all the same, and the answer reaches the call()."""
    async with two_nodes(redis_url) as setup:
        client = await connect(setup, setup.b)
        asked = asyncio.Event()
        answer = asyncio.Event()

        @client.streams.on("ping")
        async def ping(n: int) -> int:
            asked.set()
            await answer.wait()
            return n + 1

        reply = asyncio.create_task(setup.a.streams.call("ping", 41, to=client.sid))
        await asyncio.wait_for(asked.wait(), 30)
        await client.cut(0)
        await wait_for(lambda: client.resumes() == 1, 30)
        answer.set()
        assert await asyncio.wait_for(reply, 30) == 42


async def test_a_session_that_ends_during_its_resume_refuses_the_client_and_fails_the_streams(
    redis_url: str,
) -> None:
    """The session expires while the client's new connection waits for the holding node (its
    resume_timeout, run by hand at that moment; Redis behind a delayed link makes the wait last):
    the client is refused (``ResumeRefusedError``) and carries on there with a fresh session,
    node A's stream fails typed, and node A still reaches the client on its new connection."""
    async with a_stream_delivered_through_a_redis_link(redis_url) as delivered:
        setup, client, stream, data = delivered.setup, delivered.client, delivered.stream, delivered.data
        writing = asyncio.create_task(write(stream, data[PIECE:]))
        delivered.redis.set_delay(up=1.0, down=1.0)
        assert client.link.cut() == 1
        sessions = setup.b.cluster.sessions
        await wait_for(lambda: bool(sessions.attempts), 30)
        (session,) = sessions.attempts
        setup.b.streams._expire(session)  # what its resume_timeout does
        delivered.redis.set_delay(up=0.001, down=0.001)
        with pytest.raises(ConnectionAbortedStreamError):
            await asyncio.wait_for(writing, 30)
        await wait_for(lambda: client.received, 30)
        assert isinstance(client.received[0], ResumeRefusedError)
        await wait_for(lambda: setup.a.streams.stream_count() == 0, 30)
        assert not sessions.attempts and not sessions.keys
        # The client's new connection is known to node A and takes a new stream from it.
        sid = client.sid
        await wait_for(lambda: setup.a.cluster.remote_node("/", sid) == setup.b.cluster.id, 30)
        again = os.urandom(MiB)
        fresh = create_stream()
        await setup.a.streams.emit("file", fresh, len(again), to=sid)
        await write(fresh, again)
        await wait_for(lambda: len(client.received) == 2, 30)
        assert client.received[1] == hashlib.sha256(again).hexdigest()


async def test_a_session_refused_elsewhere_before_its_drop_was_seen_fails_at_the_drop(redis_url: str) -> None:
    """Another node refused the session's token (its client came back there before its old
    node saw the connection drop; here a second client presents the token to node A): node B
    forgets the session, so its drop, when seen, fails every stream at once instead of keeping
    them for resume_timeout (an hour here)."""
    async with two_nodes(redis_url, resume_timeout=3600) as setup:
        client = await connect(setup, setup.b)
        data = os.urandom(2 * MiB)
        stream = create_stream()
        await setup.a.streams.emit("file", stream, len(data), to=client.sid)
        await stream.write(data[:PIECE])
        await wait_for(lambda: client.streams._connections[None].core.streams)  # delivered
        token = client.streams._connections[None].token
        other = socketio.AsyncClient()
        answers: list[Any] = []
        other.on("$stream-hello", answers.append)
        await other.connect(setup.a.url, transports=["websocket"])
        try:
            features = ["batch-read", "unacked-write", "resume"]
            resume = {"token": token, "streams": {}, "events": 0, "awaiting": []}
            await other.emit("$stream-hello", {"version": 1, "features": features, "resume": resume})
            await wait_for(lambda: bool(answers), 30)
            assert answers[0]["resume"]["refused"] == "unknown session"
            await wait_for(lambda: not setup.b.streams._sessions, 30)  # node B heard of it
        finally:
            await other.disconnect()
        assert client.link.cut() == 1

        async def rest() -> None:
            for i in range(PIECE, len(data), PIECE):
                await stream.write(data[i : i + PIECE])
            await stream.end()

        with pytest.raises(ConnectionAbortedStreamError):
            await asyncio.wait_for(rest(), 30)
        await wait_for(lambda: client.received, 30)
        assert isinstance(client.received[0], ResumeRefusedError)
        assert setup.b.streams.statistics().suspended == 0


async def test_an_event_from_another_node_lost_in_the_drop_fails_its_call_and_its_stream(
    redis_url: str,
) -> None:
    """Node A's call() reaches the client's node only after the client's connection dropped
    (Redis behind a link delayed for that moment): that event is lost (another node's events
    are never sent again), so its call() fails with a ``HandlerError`` saying so, its stream
    fails typed at the resume, and the other streams of the session resume."""
    async with a_stream_delivered_through_a_redis_link(redis_url) as delivered:
        setup, client, kept, data = delivered.setup, delivered.client, delivered.stream, delivered.data
        delivered.redis.set_delay(up=1.0, down=1.0)
        lost = create_stream()
        reply = asyncio.create_task(setup.a.streams.call("digest", lost, to=client.sid))
        assert client.link.cut() == 1  # before the event crosses Redis
        await wait_for(lambda: len(setup.b.streams._suspended) == 1, 30)
        delivered.redis.set_delay(up=0.001, down=0.001)
        with pytest.raises(HandlerError, match="lost with a dropped connection"):
            await asyncio.wait_for(reply, 30)
        await write(kept, data[PIECE:])
        await wait_for(lambda: client.received, 30)
        assert client.received == [hashlib.sha256(data).hexdigest()]
        with pytest.raises(ConnectionAbortedStreamError):
            await asyncio.wait_for(lost.write(b"x" * PIECE), 30)
        assert client.resumes() == 1
