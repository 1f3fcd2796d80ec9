"""Initial credit on server nodes of a cluster (real redis-server): a node asked for
``ss(initial_credit=)`` offers it in its hello as a server alone does, and the offer works across
nodes (docs/protocol.md, ``initial-credit``): a stream a client returns in its answer to another
node's event takes its own node's offer, and the node that asked accepts the credit and reads
the stream whole; a client's upload to its own node for a client of another node too."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import socketio

from sio_stream import create_stream, ss
from sio_stream.cluster import cluster_for
from sio_stream.core._config import INITIAL_KEY, OUR_FEATURES
from sio_stream.core._core import DEFAULT_MAX_CHUNK
from tests.support import start_server, wait_for
from tests.test_cluster import DATA, digest, nodes  # noqa: F401 (fixture)
from tests.test_session_resume import hello_answer

pytestmark = pytest.mark.anyio

ASKED = 4 * 1024 * 1024
#: A client's hello that can take an offer (the features the offer needs among them).
HELLO = {"version": 1, "features": sorted(OUR_FEATURES)}
TIMEOUT = 60  # generous: a guard against a hang, never a measure


async def offer_of(manager: Any) -> Any:
    """The ``initial`` entry of the hello a server with ``manager`` answers, asked for
    ``ASKED`` bytes of initial credit (``None``: no offer)."""
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)
    ss(sio, initial_credit=ASKED)
    runner, url = await start_server(sio)
    node = cluster_for(sio)
    try:
        if node is not None:
            await node.ready()
        return (await hello_answer(url, HELLO)).get(INITIAL_KEY)
    finally:
        if node is not None:
            await node.close()
        await sio.shutdown()
        await runner.cleanup()


async def test_a_cluster_node_offers_initial_credit_as_a_server_alone_does(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="sio_stream"):
        alone = await offer_of(None)
        clustered = await offer_of(socketio.AsyncRedisManager(redis_url))
    assert alone == clustered == {"credits": ASKED // DEFAULT_MAX_CHUNK, "size": DEFAULT_MAX_CHUNK}
    assert not [record for record in caplog.records if "initial_credit" in record.getMessage()]


async def test_a_stream_returned_to_another_node_takes_the_offer_and_arrives_whole(nodes):  # noqa: F811
    a, b = await nodes(initial_credit=ASKED), await nodes(initial_credit=ASKED)
    client, sid = await nodes.client(b, [a], initial_credit=ASKED)
    core = ss(client)._connections[None].core
    await wait_for(lambda: core.peer_offer is not None)  # node B's offer came
    ending: list[asyncio.Task[None]] = []

    @ss(client).on("give")
    async def give() -> Any:
        answer = create_stream()
        ending.append(asyncio.get_running_loop().create_task(answer.end(DATA)))
        return answer

    answer = await asyncio.wait_for(a.streams.call("give", to=sid), TIMEOUT)
    assert answer._core.initial_credit > 0  # node A accepted the credit of B's offer
    assert digest(await asyncio.wait_for(answer.read(), TIMEOUT)) == digest(DATA)
    await asyncio.wait_for(ending[0], TIMEOUT)  # the client's end() heard node A's answer
    assert core.peer_offer is None
    await wait_for(lambda: a.streams.stream_count() == 0 and b.streams.stream_count() == 0)


async def test_an_upload_relayed_to_a_client_of_another_node_with_offers_on(nodes):  # noqa: F811
    a, b = await nodes(initial_credit=ASKED), await nodes(initial_credit=ASKED)
    sender, _ = await nodes.client(a, [b], initial_credit=ASKED)
    receiver, receiver_sid = await nodes.client(b, [a], initial_credit=ASKED)

    @a.streams.on("send_to")
    async def send_to(sid: str, stream: Any, target: str) -> Any:
        return await a.streams.call("file", stream, to=target, timeout=TIMEOUT)

    @ss(receiver).on("file")
    async def on_file(stream: Any) -> str:
        return digest(await stream.read())

    stream = create_stream()
    reply = asyncio.create_task(ss(sender).call("send_to", stream, receiver_sid, timeout=TIMEOUT))
    await stream.end(DATA)
    assert await asyncio.wait_for(reply, TIMEOUT) == digest(DATA)
    assert stream._core.initial_credit > 0  # the upload took node A's offer
    await wait_for(lambda: a.streams.stream_count() == 0 and b.streams.stream_count() == 0)
