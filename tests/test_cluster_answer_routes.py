"""A stream a client returns in its answer to another node's event, when that answer is given
after the client's connection dropped and resumed: its node routes the stream's packets to the
node that asked from the client's new sid. The answer comes through the resume, and its node used
to learn the route under the sid the event was delivered to, which the resume had retired: the
client's first packets for the stream (an end at once here; with initial credit, its writes) went
to its own node's core as an unknown id and were lost, and the other node's read never ended."""

from __future__ import annotations

import asyncio
import os

import pytest

from sio_stream import IOStream, create_stream
from tests.support import tasks_end_while_the_loop_runs
from tests.test_cluster_resume_forwarded import MiB, connect, two_nodes, write

pytestmark = pytest.mark.anyio

__all__ = ["tasks_end_while_the_loop_runs"]  # autouse: leftover tasks end while the loop runs


async def test_a_stream_ended_at_once_in_an_answer_given_after_the_drops_ends_on_the_other_node(
    redis_url: str,
) -> None:
    async with two_nodes(redis_url) as setup:
        client = await connect(setup, setup.b)
        ends: list[asyncio.Task[None]] = []

        @client.streams.on("echo")
        async def echo(stream: IOStream) -> IOStream:
            data = await stream.read()
            answer = create_stream()
            # Its end needs no credit: it leaves right behind the answer, before the other
            # node's first read could teach the client's node where the stream goes.
            ends.append(asyncio.create_task(answer.end(data[:0])))
            return answer

        stream = create_stream()
        reply = asyncio.create_task(setup.a.streams.call("echo", stream, to=client.sid))
        await write(stream, os.urandom(3 * MiB), {MiB: client, 2 * MiB: client})
        answer = await asyncio.wait_for(reply, 30)
        assert await asyncio.wait_for(answer.read(), 30) == b""
        await asyncio.wait_for(ends[0], 30)
        assert answer.error is None
        assert client.resumes() == 2
