"""Our JavaScript client (js/sio-stream.js, in Node) as the client of node B of a cluster: node A
calls it with a stream (forwarded over Redis), and the client's connection, through
``benchmarks/link.py``'s relay, is cut twice mid-stream. Every byte arrives once, in order, and
A's ``call()`` gets the client's answer, which came after the drops (see docs/guides/nodes.md)."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest
import socketio
from _node import NODE_DIR, NodeTools, json_line_client

from benchmarks.link import Link
from sio_stream import create_stream, ss
from sio_stream.cluster import cluster_for
from tests.support import start_server, tasks_end_while_the_loop_runs, wait_for
from tests.test_session_resume import tolerate_socketio_cut_races

pytestmark = pytest.mark.anyio

__all__ = ["tasks_end_while_the_loop_runs"]  # autouse: leftover tasks end while the loop runs

MiB = 1024 * 1024
PIECE = 256 * 1024
SCRIPT = NODE_DIR / "cluster_resume_client.mjs"
#: Generous: two busy cores shared with other test runs.
TIMEOUT = 120.0


async def test_a_stream_from_another_node_to_a_javascript_client_survives_two_cuts(
    node_tools: NodeTools, redis_url: str
) -> None:
    nodes = []
    for _ in range(2):
        sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=socketio.AsyncRedisManager(redis_url))
        ss(sio, resume_timeout=30)
        runner, url = await start_server(sio)
        node = cluster_for(sio)
        assert node is not None
        await node.ready()
        nodes.append((sio, runner, url, node))
    (a, _, _, a_node), (b, _, b_url, b_node) = nodes
    try:
        with tolerate_socketio_cut_races():
            async with (
                Link(int(b_url.rsplit(":", 1)[1]), rtt=0.01) as link,
                json_line_client(node_tools, SCRIPT, {"url": link.url}, TIMEOUT) as line,
            ):
                ready = await line()
                assert "resume" in ready["features"], ready
                sid = ready["sid"]
                await wait_for(lambda: a_node.remote_node("/", sid) == b_node.id, TIMEOUT)
                data = os.urandom(4 * MiB)
                stream = create_stream()
                reply = asyncio.create_task(ss(a).call("digest", stream, to=sid, timeout=TIMEOUT))
                for i in range(0, len(data), PIECE):
                    if i in (MiB, 3 * MiB):
                        done = i // (2 * MiB)  # the cut at 3 MiB waits for the first resume
                        await wait_for(lambda done=done: ss(b).statistics().resumes == done, TIMEOUT)
                        assert link.cut() == 1
                    await stream.write(data[i : i + PIECE])
                await stream.end()
                result = await line()
                assert result["errors"] == [], result
                assert result["received"] == len(data)
                assert result["sha256"] == hashlib.sha256(data).hexdigest()
                assert len(result["drops"]) == 2 and result["statistics"]["resumes"] == 2, result
                assert await asyncio.wait_for(reply, TIMEOUT) == result["sha256"]
                assert stream.error is None
    finally:
        for sio, runner, _url, node in nodes:
            await node.close()  # before the server shuts down (see tests/support.py)
            await sio.shutdown()
            await runner.cleanup()
