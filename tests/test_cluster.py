"""Streams across server nodes joined by a real redis-server (python-socketio's
AsyncRedisManager): every node in this process on its own port, clients on each."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import pytest
import socketio

from sio_stream import HandlerError, StreamBrokenError, create_stream, ss
from sio_stream.cluster import ClusterNode, cluster_for
from tests.interop._node import NODE_DIR, ensure_node
from tests.redis_support import redis_process
from tests.support import start_server, wait_for

pytestmark = pytest.mark.anyio

DATA = os.urandom(3 * 1024 * 1024 + 11)
ROOT = Path(__file__).resolve().parent.parent
NODE_SCRIPT = ROOT / "tests" / "cluster_node.py"


@dataclass
class Node:
    sio: socketio.AsyncServer
    runner: Any
    url: str

    @property
    def streams(self) -> Any:
        return ss(self.sio)

    @property
    def cluster(self) -> ClusterNode:
        node = cluster_for(self.sio)
        assert node is not None
        return node


@pytest.fixture
async def nodes(redis_url: str) -> AsyncIterator[Any]:
    started: list[Node] = []
    clients: list[socketio.AsyncClient] = []

    async def node(**options: Any) -> Node:
        """A node; ``options`` go to its ``ss()``."""
        sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=socketio.AsyncRedisManager(redis_url))
        ss(sio, **options)
        runner, url = await start_server(sio)
        result = Node(sio, runner, url)
        await result.cluster.ready()
        started.append(result)
        return result

    async def client(on: Node, others: list[Node], **options: Any) -> tuple[socketio.AsyncClient, str]:
        """A client of ``on``, once every node in ``others`` knows where it is; ``options`` go
        to its ``ss()``."""
        sio = socketio.AsyncClient()
        ss(sio, **options)  # before connecting, as an application does: its hello goes out at once
        clients.append(sio)
        await sio.connect(on.url, transports=["websocket"])
        sid = sio.get_sid()
        assert sid is not None
        for other in others:
            await wait_for(lambda other=other: other.cluster.remote_node("/", sid) is not None)
        return sio, sid

    node.client = client  # type: ignore[attr-defined]
    yield node
    for sio in clients:
        if sio.connected:
            await sio.disconnect()
    for each in started:
        await each.cluster.close()
        await each.sio.shutdown()
        await each.runner.cleanup()
    gc.collect()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def stream_being_read(node: Node, client: socketio.AsyncClient, sid: str) -> Any:
    """A stream from ``node`` to ``client`` (of another node), once the client has read a byte
    of it and stopped reading."""
    reading = asyncio.Event()

    @ss(client).on("file")
    async def on_file(stream: Any) -> None:
        await stream.read(1)
        reading.set()
        await asyncio.Event().wait()

    stream = create_stream()
    node.streams.emit("file", stream, to=sid)
    await stream.write(b"x" * 1000)
    await asyncio.wait_for(reading.wait(), 60)
    return stream


async def writes_fail_with_connection_aborted(stream: Any) -> None:
    with pytest.raises(StreamBrokenError, match="Connection aborted"):
        while True:
            await stream.write(b"y" * 65536)


async def test_a_stream_to_a_client_on_another_node(nodes):
    a, b = await nodes(), await nodes()
    client, sid = await nodes.client(b, [a])

    @ss(client).on("file")
    async def on_file(stream: Any, meta: Any) -> Any:
        return [meta["name"], digest(await stream.read())]

    stream = create_stream()
    reply = asyncio.create_task(a.streams.call("file", stream, {"name": "x"}, to=sid))
    for i in range(0, len(DATA), 200_000):
        await stream.write(DATA[i : i + 200_000])
    await stream.end()
    assert await asyncio.wait_for(reply, 60) == ["x", digest(DATA)]
    await wait_for(lambda: a.streams.stream_count() == 0 and b.streams.stream_count() == 0)
    await wait_for(lambda: not any(b.cluster.routes.values()))


async def test_the_client_writes_back_and_returns_streams_in_its_ack(nodes):
    a, b = await nodes(), await nodes()
    client, sid = await nodes.client(b, [a])

    ending: list[asyncio.Task[None]] = []

    @ss(client).on("fill")
    async def fill(stream: Any, size: int) -> Any:
        await stream.end(DATA[:size])
        answer = create_stream()
        ending.append(asyncio.get_running_loop().create_task(answer.end(b"from the ack")))
        return answer

    stream = create_stream()
    reply = asyncio.create_task(a.streams.call("fill", stream, 1_000_000, to=sid))
    assert await stream.read() == DATA[:1_000_000]
    answer = await asyncio.wait_for(reply, 60)
    assert await answer.read() == b"from the ack"
    await asyncio.wait_for(ending[0], 60)  # the client's end() heard back from node A
    await wait_for(lambda: a.streams.stream_count() == 0)


async def test_object_streams_and_handler_errors_across_nodes(nodes):
    a, b = await nodes(), await nodes()
    client, sid = await nodes.client(b, [a])

    @ss(client).on("sum")
    async def total(numbers: Any) -> int:
        return sum([n async for n in numbers])

    @ss(client).on("fail")
    async def fail(stream: Any) -> None:
        raise HandlerError("no thanks")

    numbers = create_stream(object_mode=True)
    reply = asyncio.create_task(a.streams.call("sum", numbers, to=sid))
    for n in range(500):
        await numbers.write(n)
    await numbers.end()

    assert await asyncio.wait_for(reply, 60) == sum(range(500))
    with pytest.raises(HandlerError, match="no thanks"):
        await a.streams.call("fail", create_stream(), to=sid)


async def test_a_relay_between_clients_of_two_nodes(nodes):
    a, b = await nodes(), await nodes()
    sender, _ = await nodes.client(a, [])
    receiver, receiver_sid = await nodes.client(b, [a])

    @a.streams.on("send-to")
    async def send_to(sid: str, stream: Any, target: str) -> Any:
        return await a.streams.call("file", stream, to=target)

    @ss(receiver).on("file")
    async def on_file(stream: Any) -> str:
        return digest(await stream.read())

    stream = create_stream()
    reply = asyncio.create_task(ss(sender).call("send-to", stream, receiver_sid))
    await stream.end(DATA)
    assert await asyncio.wait_for(reply, 60) == digest(DATA)


async def test_a_client_leaving_its_node_fails_the_stream_on_the_other(nodes):
    a, b = await nodes(), await nodes()
    client, sid = await nodes.client(b, [a])
    stream = await stream_being_read(a, client, sid)
    await client.disconnect()
    await writes_fail_with_connection_aborted(stream)
    await wait_for(lambda: a.streams.stream_count() == 0)


async def test_local_streams_publish_nothing_on_redis(nodes, redis_url):
    import redis.asyncio

    a, b = await nodes(), await nodes()
    client, sid = await nodes.client(a, [b])

    @ss(client).on("file")
    async def on_file(stream: Any) -> int:
        return len(await stream.read())

    spy = redis.asyncio.Redis.from_url(redis_url)
    pubsub = spy.pubsub()
    await pubsub.psubscribe(f"{a.cluster.prefix}:node:*")
    try:
        stream = create_stream()
        reply = asyncio.create_task(a.streams.call("file", stream, to=sid))
        await stream.end(DATA)
        assert await asyncio.wait_for(reply, 60) == len(DATA)
        frames = []
        while (message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)) is not None:
            frames.append(message)
        assert frames == []
    finally:
        await pubsub.aclose()
        await spy.aclose()


async def start_node_process(redis_url: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(NODE_SCRIPT),
        redis_url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert line.startswith(b"LISTENING "), line
    return proc, f"http://127.0.0.1:{int(line.split()[1])}"


async def test_a_node_that_dies_fails_the_streams_through_it_within_seconds(nodes, redis_url):
    a = await nodes()
    proc, url = await start_node_process(redis_url)
    try:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(url, transports=["websocket"])
        sid = client.get_sid()
        await wait_for(lambda: a.cluster.remote_node("/", sid) is not None)
        stream = await stream_being_read(a, client, sid)
        proc.kill()  # the node dies mid-transfer, without a goodbye
        loop = asyncio.get_running_loop()
        killed = loop.time()
        await writes_fail_with_connection_aborted(stream)
        assert loop.time() - killed < 10
        await wait_for(lambda: a.streams.stream_count() == 0)
        assert a.cluster.remote_node("/", sid) is None
        await client.disconnect()
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_a_javascript_client_on_another_node(nodes):
    a, b = await nodes(), await nodes()
    tools = ensure_node()
    proc = await asyncio.create_subprocess_exec(
        tools.node,
        str(NODE_DIR / "room_client.js"),
        b.url,
        cwd=NODE_DIR,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        hello = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
        assert hello["ready"] is True
        sid = hello["id"]  # socket.id: the client's sid on b
        await wait_for(lambda: a.cluster.remote_node("/", sid) is not None)
        stream = create_stream()
        reply = asyncio.create_task(a.streams.call("file", stream, {"name": "js"}, to=sid))
        for i in range(0, len(DATA), 64 * 1024):
            await stream.write(DATA[i : i + 64 * 1024])
        await stream.end()
        assert await asyncio.wait_for(reply, 60) == digest(DATA)
        report = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
        assert report == {"size": len(DATA), "sha256": digest(DATA)}
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 60)


async def test_losing_redis_fails_forwarded_streams_and_local_ones_go_on():
    with redis_process() as (url, proc):
        servers = []
        for _ in range(2):
            sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=socketio.AsyncRedisManager(url))
            ss(sio)
            runner, server_url = await start_server(sio)
            node = cluster_for(sio)
            assert node is not None
            await node.ready()
            servers.append((sio, runner, server_url, node))
        (a, _, a_url, a_node), (_, _, b_url, _) = servers
        remote, local = socketio.AsyncClient(), socketio.AsyncClient()
        try:
            await remote.connect(b_url, transports=["websocket"])
            await local.connect(a_url, transports=["websocket"])
            for client in (remote, local):

                @ss(client).on("file")
                async def on_file(stream: Any) -> str:
                    return digest(await stream.read())

            sid = remote.get_sid()
            await wait_for(lambda: a_node.remote_node("/", sid) is not None)
            forwarded = create_stream()
            ss(a).emit("file", forwarded, to=sid)
            await forwarded.write(b"x" * 1000)
            proc.terminate()  # Redis goes away
            await asyncio.to_thread(proc.wait, 30)
            with pytest.raises(StreamBrokenError, match="Connection aborted"):
                while True:
                    await forwarded.write(b"y" * 65536)
            # A stream between node A and its own client does not need Redis.
            stream = create_stream()
            reply = asyncio.create_task(ss(a).call("file", stream, to=local.get_sid()))
            await stream.end(DATA)
            assert await asyncio.wait_for(reply, 60) == digest(DATA)
            await wait_for(lambda: ss(a).stream_count() == 0)
        finally:
            for client in (remote, local):
                if client.connected:
                    await client.disconnect()
            for sio, runner, _url, node in servers:
                await node.close()
                await sio.shutdown()
                await runner.cleanup()


async def test_a_file_from_a_client_of_another_node_is_checked_end_to_end(nodes, tmp_path):
    from sio_stream import receive_file, send_file

    a, b = await nodes(), await nodes()
    client, sid = await nodes.client(b, [a])
    source = tmp_path / "source.bin"
    source.write_bytes(DATA)
    # Features are used once both sides announced them: let the client's hello round trip end
    # (an event from node A may otherwise overtake node B's answer, and no digest is sent).
    connection = ss(client)._connections[None]
    await wait_for(lambda: "digest" in connection.core.peer_features)

    @ss(client).on("send-me")
    async def send_me(stream: Any) -> int:
        return await send_file(stream, source)  # the digest travels with the end

    stream = create_stream()
    reply = asyncio.create_task(a.streams.call("send-me", stream, to=sid))
    # receive_file checks the digest itself (off the event loop): node A answers the end's
    # ack only then, from a callback, while its Redis listener goes on.
    assert await receive_file(stream, tmp_path / "copy.bin") == len(DATA)
    assert await asyncio.wait_for(reply, 60) == len(DATA)
    assert (tmp_path / "copy.bin").read_bytes() == DATA
    # send_file's "auto" digest between two sio_stream peers with the blake3 package.
    assert (stream._core.digest_name, stream.digest) == ("blake3", blake3.blake3(DATA).hexdigest())
