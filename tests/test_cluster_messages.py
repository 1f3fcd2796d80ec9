"""What crosses Redis between two nodes for a stream, and the connection each node publishes on
(sio_stream/cluster/_sender.py): real nodes in this process, a real redis-server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio

from sio_stream import create_stream, ss
from sio_stream.cluster._frames import decode, unbatch
from tests.support import wait_for
from tests.test_cluster import DATA, digest, nodes  # noqa: F401 (the fixture)

pytestmark = pytest.mark.anyio


async def test_only_ends_and_events_are_acked_and_credit_rides_along(nodes, redis_url):  # noqa: F811
    a, b = await nodes(), await nodes()
    client, sid = await nodes.client(b, [a])

    @ss(client).on("file")
    async def on_file(stream: Any) -> str:
        return digest(await stream.read())

    @ss(client).on("fill")
    async def fill(stream: Any) -> None:
        await stream.end(DATA)

    spy = redis.asyncio.Redis.from_url(redis_url)
    pubsub = spy.pubsub()
    await pubsub.psubscribe(f"{a.cluster.prefix}:node:*")
    confirmation = await pubsub.get_message(timeout=10)  # subscribed before anything is sent
    assert confirmation is not None and confirmation["type"] == "psubscribe"
    try:
        # Both directions: A writes to B's client (its reads are forwarded to A), and B's client
        # writes into a stream A sent it (its writes and its end are forwarded).
        stream = create_stream()
        reply = asyncio.create_task(a.streams.call("file", stream, to=sid))
        await stream.end(DATA)
        assert await asyncio.wait_for(reply, 60) == digest(DATA)
        filled = create_stream()
        answer = asyncio.create_task(a.streams.call("fill", filled, to=sid))
        assert digest(await filled.read()) == digest(DATA)
        await asyncio.wait_for(answer, 60)
        await wait_for(lambda: a.streams.stream_count() == 0 and b.streams.stream_count() == 0)

        messages: list[list[dict[str, Any]]] = []
        while (message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)) is not None:
            messages.append([decode(frame)[0] for frame in unbatch(message["data"])])
    finally:
        await pubsub.aclose()
        await spy.aclose()
    frames = [header for message in messages for header in message]
    forwarded = [header for header in frames if header["t"] == "fwd"]
    assert {header["event"] for header in forwarded} >= {"$stream-read", "$stream-write", "$stream-end"}
    # Reads (one per chunk of credit) and writes go unanswered; an end's answer reaches the client.
    acked = [header["event"] for header in forwarded if header["ack"] is not None]
    assert set(acked) == {"$stream-end"}
    # An ack frame answers only what asked for one: A's events and ends, and the forwarded ends.
    asked = [header for header in frames if header["t"] == "emit" and header["ack"] is not None]
    assert {header["event"] for header in asked} == {"$stream", "$stream-end"}
    assert len([header for header in frames if header["t"] == "ack"]) == len(asked) + len(acked)
    # Confirmations ride in front of the messages that go anyway (here: forwarded reads).
    assert any(
        message[0]["t"] == "credit" and any(header["t"] == "fwd" for header in message[1:])
        for message in messages
    )


async def test_a_publishing_connection_closed_while_idle_is_replaced(nodes, redis_url):  # noqa: F811
    a, b = await nodes(), await nodes()
    client, sid = await nodes.client(b, [a])

    @ss(client).on("file")
    async def on_file(stream: Any) -> str:
        return digest(await stream.read())

    async def send() -> None:
        stream = create_stream()
        reply = asyncio.create_task(a.streams.call("file", stream, to=sid))
        await stream.end(DATA)
        assert await asyncio.wait_for(reply, 60) == digest(DATA)

    await send()
    senders = [a.cluster._senders[b.cluster.id], b.cluster._senders[a.cluster.id]]
    spy = redis.asyncio.Redis.from_url(redis_url)
    try:
        # As Redis's `timeout` setting does to a connection idle that long.
        ours = {f"sio_stream:{a.cluster.id}->{b.cluster.id}", f"sio_stream:{b.cluster.id}->{a.cluster.id}"}
        publishers = [entry for entry in await spy.client_list() if entry["name"] in ours]
        assert len(publishers) == 2  # one per node, to the other
        for entry in publishers:
            await spy.client_kill(entry["addr"])
    finally:
        await spy.aclose()
    await wait_for(lambda: all(sender._connection is None for sender in senders))
    await send()  # on new connections
    assert b.cluster.id in a.cluster.peers and a.cluster.id in b.cluster.peers  # nothing was lost
    await wait_for(lambda: a.streams.stream_count() == 0 and b.streams.stream_count() == 0)
