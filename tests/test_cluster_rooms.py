"""Rooms that span server nodes joined by a real redis-server: one emit to a room reaches the
members on every node, with one copy of each chunk per other node on Redis."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import pytest
import socketio

from sio_stream import ConnectionAbortedStreamError, LocalProtocolError, StreamError, create_stream, ss
from sio_stream.core._core import DEFAULT_MAX_CHUNK, DEFAULT_WINDOW
from tests.support import tasks_end_while_the_loop_runs, wait_for  # noqa: F401 (autouse fixture)
from tests.test_cluster import ROOT, Node, digest, nodes  # noqa: F401 (fixtures)

pytestmark = pytest.mark.anyio

DATA = os.urandom(4 * 1024 * 1024 + 7)
ROOM_NODE_SCRIPT = ROOT / "tests" / "cluster_room_node.py"


def rooms_on(node: Node) -> None:
    @node.sio.on("join")
    async def join(sid: str, room: str) -> bool:
        await node.sio.enter_room(sid, room)
        return True


def serve_digests(client: socketio.AsyncClient) -> None:
    @ss(client).on("file")
    async def on_file(stream: Any, name: str) -> Any:
        return [name, digest(await stream.read())]


async def join(client: socketio.AsyncClient, room: str = "room") -> None:
    assert await client.call("join", room, timeout=60) is True


async def write_all(stream: Any, data: bytes = DATA) -> None:
    for i in range(0, len(data), 200_000):
        await stream.write(data[i : i + 200_000])
    await stream.end()


async def redis_bytes_to(url: str, channel: str, done: asyncio.Event) -> int:
    """Bytes published on ``channel`` until ``done`` is set (and the channel is quiet)."""
    import redis.asyncio

    spy = redis.asyncio.Redis.from_url(url, protocol=2)
    pubsub = spy.pubsub()
    await pubsub.subscribe(channel)
    total = 0
    try:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if message is not None:
                total += len(message["data"])
            elif done.is_set():
                return total
    finally:
        await pubsub.aclose()
        await spy.aclose()


async def test_a_room_of_three_and_three_members_on_two_nodes_gets_every_byte(nodes, redis_url):  # noqa: F811
    a, b = await nodes(), await nodes()
    members: dict[str, socketio.AsyncClient] = {}
    for node, other in ((a, b), (b, a)):
        rooms_on(node)
        for _ in range(3):
            client, sid = await nodes.client(node, [other])
            serve_digests(client)
            await join(client)
            members[sid] = client
    done = asyncio.Event()
    spying = asyncio.create_task(redis_bytes_to(redis_url, a.cluster.node_channel(b.cluster.id), done))
    await asyncio.sleep(0)  # the spy subscribes before the first frame (it only counts)

    stream = create_stream()
    reply = asyncio.create_task(a.streams.call("file", stream, "shared", to="room"))
    await write_all(stream)
    answers = await asyncio.wait_for(reply, 120)
    done.set()
    assert answers == {sid: ["shared", digest(DATA)] for sid in members}
    # One copy of each chunk for node B (not one per member there): a little framing beyond it.
    carried = await asyncio.wait_for(spying, 60)
    assert len(DATA) <= carried <= 1.1 * len(DATA)
    await wait_for(lambda: a.streams.stream_count() == 0 and b.streams.stream_count() == 0)


async def test_emit_to_a_room_calls_back_once_per_member_on_every_node(nodes):  # noqa: F811
    a, b = await nodes(), await nodes()
    members = []
    for node, other in ((a, b), (b, a)):
        rooms_on(node)
        for _ in range(2):
            client, sid = await nodes.client(node, [other])
            serve_digests(client)
            await join(client)
            members.append(sid)
    outsider, _ = await nodes.client(b, [a])  # connected, not in the room: gets nothing
    serve_digests(outsider)
    skipped, skipped_sid = await nodes.client(b, [a])  # in the room, but skip_sid names it
    serve_digests(skipped)
    await join(skipped)
    acks: dict[str, Any] = {}
    all_in = asyncio.Event()

    def on_ack(sid: str, *ack: Any) -> None:
        acks[sid] = list(ack)
        if len(acks) == len(members):
            all_in.set()

    stream = create_stream()
    a.streams.emit("file", stream, "called back", to="room", callback=on_ack, skip_sid=skipped_sid)
    await write_all(stream, DATA[:1_000_000])
    await asyncio.wait_for(all_in.wait(), 120)
    assert acks == {sid: [["called back", digest(DATA[:1_000_000])]] for sid in members}


async def test_a_member_that_leaves_mid_stream_fails_alone(nodes):  # noqa: F811
    a, b = await nodes(), await nodes()
    members = []
    for node, other in ((a, b), (b, a)):
        rooms_on(node)
        for _ in range(2):
            client, sid = await nodes.client(node, [other])
            serve_digests(client)
            await join(client)
            members.append(sid)
    leaver, leaver_sid = await nodes.client(b, [a])
    await join(leaver)
    reading, released = asyncio.Event(), asyncio.Event()

    @ss(leaver).on("file")
    async def on_file(stream: Any, name: str) -> None:
        await stream.read(1)
        reading.set()
        # Ends with the test: python-socketio turns a handler's cancellation into an ack.
        await released.wait()

    stream = create_stream()
    reply = asyncio.create_task(a.streams.call("file", stream, "left", to="room"))
    writing = asyncio.create_task(write_all(stream))
    await asyncio.wait_for(reading.wait(), 60)
    await leaver.disconnect()
    try:
        await asyncio.wait_for(writing, 120)
        answers = await asyncio.wait_for(reply, 120)
    finally:
        released.set()
    assert {sid: answers[sid] for sid in members} == {sid: ["left", digest(DATA)] for sid in members}
    assert isinstance(answers[leaver_sid], ConnectionAbortedStreamError)
    await wait_for(lambda: a.streams.stream_count() == 0 and b.streams.stream_count() == 0)


async def test_the_room_event_on_a_node_without_members_is_refused_at_once(nodes):  # noqa: F811
    a, b = await nodes(), await nodes()
    rooms_on(a)
    client, sid = await nodes.client(a, [b])
    await wait_for(lambda: b.cluster.id in a.cluster.peers)
    serve_digests(client)
    await join(client)
    stream = create_stream()
    reply = asyncio.create_task(a.streams.call("file", stream, "alone", to="room"))
    await write_all(stream)
    assert await asyncio.wait_for(reply, 60) == {sid: ["alone", digest(DATA)]}
    await wait_for(lambda: a.streams.stream_count() == 0 and b.streams.stream_count() == 0)


async def test_a_room_with_nobody_on_any_node_fails_the_writer(nodes):  # noqa: F811
    a, b = await nodes(), await nodes()
    await wait_for(lambda: b.cluster.id in a.cluster.peers)
    stream = create_stream()
    a.streams.emit("file", stream, "nobody", to="empty room")  # B might have members
    with pytest.raises(StreamError, match="every recipient left"):
        await write_all(stream)


async def start_room_node(url: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOM_NODE_SCRIPT),
        url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert line.startswith(b"LISTENING "), line
    return proc, f"http://127.0.0.1:{int(line.split()[1])}"


async def test_a_node_that_dies_mid_stream_drops_its_members_and_the_others_finish(nodes, redis_url):  # noqa: F811
    a = await nodes()
    rooms_on(a)
    local = []
    for _ in range(3):
        client, sid = await nodes.client(a, [])
        serve_digests(client)
        await join(client)
        local.append(sid)
    proc, url = await start_room_node(redis_url)
    remote: list[socketio.AsyncClient] = []
    released = asyncio.Event()
    try:
        reading = asyncio.Semaphore(0)
        for _ in range(3):
            client = socketio.AsyncClient(reconnection=False)

            @ss(client).on("file")
            async def stalled(stream: Any, name: str) -> None:
                await stream.read(1)
                reading.release()
                await released.wait()  # stops reading: the group waits for it

            await client.connect(url, transports=["websocket"])
            remote.append(client)
            await join(client)
            sid = client.get_sid()
            await wait_for(lambda sid=sid: a.cluster.remote_node("/", sid) is not None)

        stream = create_stream()
        reply = asyncio.create_task(a.streams.call("file", stream, "survivors", to="room"))
        writing = asyncio.create_task(write_all(stream))
        for _ in range(3):
            await asyncio.wait_for(reading.acquire(), 60)
        assert not writing.done()  # held back by the stalled members on the other node
        proc.kill()  # that node dies mid-transfer, without a goodbye
        await asyncio.wait_for(writing, 60)
        assert await asyncio.wait_for(reply, 60) == {sid: ["survivors", digest(DATA)] for sid in local}
        await wait_for(lambda: a.streams.stream_count() == 0)
    finally:
        released.set()
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        for client in remote:
            if client.connected:
                await client.disconnect()
            await client.wait()  # its tasks end (reconnection is off)


async def test_the_emitting_node_leaving_fails_the_members_on_the_others(nodes):  # noqa: F811
    a, b = await nodes(), await nodes()
    rooms_on(b)
    failures: list[BaseException] = []
    reading = asyncio.Semaphore(0)
    for _ in range(2):
        client, _sid = await nodes.client(b, [a])
        await join(client)

        @ss(client).on("file")
        async def on_file(stream: Any, name: str) -> None:
            await stream.read(1)
            reading.release()
            try:
                await stream.read()
            except StreamError as exc:
                failures.append(exc)

    stream = create_stream()
    a.streams.emit("file", stream, "orphaned", to="room")
    await stream.write(b"x" * 100_000)
    for _ in range(2):
        await asyncio.wait_for(reading.acquire(), 60)
    await a.cluster.close()  # node A leaves mid-stream (a dead one is noticed the same way, later)
    await wait_for(lambda: len(failures) == 2, 60)
    assert all("Connection aborted" in str(exc) for exc in failures)
    await wait_for(lambda: b.streams.stream_count() == 0)


async def test_a_sid_connected_nowhere_is_refused_at_once_in_a_cluster(nodes):  # noqa: F811
    a, b = await nodes(), await nodes()
    client, sid = await nodes.client(b, [a])
    await client.disconnect()
    await wait_for(lambda: a.cluster.remote_node("/", sid) is None)
    with pytest.raises(LocalProtocolError, match="not connected"):
        a.streams.emit("file", create_stream(), "gone", to=sid)


async def test_max_lag_drops_a_stalled_member_on_the_other_node_and_the_rest_finish(nodes):  # noqa: F811
    a, b = await nodes(), await nodes()
    # Each member reads with its configured window, fixed: neither the initial credit a client
    # offers nor a window the tuner grew, whose call depends on the round trips it timed.
    fixed = {"initial_credit": 0, "max_window": DEFAULT_WINDOW * DEFAULT_MAX_CHUNK}
    read: dict[str, int] = {}

    def serve_counting(client: socketio.AsyncClient, sid: str) -> None:
        @ss(client).on("file")
        async def on_file(stream: Any, name: str) -> Any:
            parts = []
            async for chunk in stream:
                parts.append(bytes(chunk))
                read[sid] += len(chunk)
            return [name, digest(b"".join(parts))]

    members = []
    for node, other in ((a, b), (b, a)):
        rooms_on(node)
        client, sid = await nodes.client(node, [other], **fixed)
        read[sid] = 0
        serve_counting(client, sid)
        await join(client)
        members.append(sid)
    stalled, stalled_sid = await nodes.client(b, [a], **fixed)
    await join(stalled)
    written = asyncio.Event()

    @ss(stalled).on("file")
    async def on_file(stream: Any, name: str) -> Any:
        await stream.read(1)
        await written.wait()  # reads nothing more until the writer has finished
        return await stream.read()  # fails: its node dropped it

    # The writer keeps within 2 MiB of the readers (a reader on a loaded core is not a laggard:
    # under max_lag the group moves at its fastest member's pace, and a reader on node B once
    # fell 6,367,232 bytes behind one on node A in CI), so what waits for each reader stays well
    # within max_lag, while the stalled member takes its read window (2 MiB) and no more: with
    # 16 MiB sent, what waits for it on node B passes max_lag.
    data = DATA * 4
    stream = create_stream()
    reply = asyncio.create_task(a.streams.call("file", stream, "lagging", to="room", max_lag=6 * 1024 * 1024))

    async def write_in_step_with_the_readers() -> None:
        for i in range(0, len(data), 200_000):
            await wait_for(lambda i=i: min(read.values()) >= i - 2 * 1024 * 1024, 120)
            await stream.write(data[i : i + 200_000])
        await stream.end()

    await asyncio.wait_for(write_in_step_with_the_readers(), 240)  # the laggard holds nobody back
    written.set()
    answers = await asyncio.wait_for(reply, 120)
    assert {sid: answers[sid] for sid in members} == {sid: ["lagging", digest(data)] for sid in members}
    assert "fell behind by" in str(answers[stalled_sid])


async def test_a_namespace_the_other_node_does_not_serve_refuses_the_room_at_once(nodes):  # noqa: F811
    a, b = await nodes(), await nodes()
    await wait_for(lambda: b.cluster.id in a.cluster.peers)
    chat = ss(a.sio, "/chat")  # node B has no sio_stream socket for /chat
    stream = create_stream()
    chat.emit("file", stream, "nobody", to="room")
    with pytest.raises(StreamError, match="every recipient left"):
        await asyncio.wait_for(write_all(stream), 60)
