"""Ordering rules: nothing for a stream reaches the peer before the event that announces it."""

from __future__ import annotations

import asyncio

import pytest

from sio_stream import create_stream

pytestmark = pytest.mark.anyio


async def test_reading_a_stream_before_it_is_sent_still_works(pair):
    @pair.server_streams.on("feed")
    async def feed(sid, stream):
        await stream.write(b"abc")
        await stream.end()
        return "done"

    stream = create_stream()
    # The read starts (and wants to grant credit) before call() has queued the event.
    reader = asyncio.ensure_future(stream.read())
    await asyncio.sleep(0)
    reply = await pair.client_streams.call("feed", stream, timeout=30)
    assert await asyncio.wait_for(reader, 30) == b"abc"
    assert reply == "done"


async def test_ending_a_stream_before_it_is_sent_delivers_its_data(pair):
    @pair.server_streams.on("size")
    async def size(sid, stream):
        return len(await stream.read())

    stream = create_stream()
    await stream.write(b"12345")
    end = asyncio.ensure_future(stream.end())
    await asyncio.sleep(0)
    assert await pair.client_streams.call("size", stream, timeout=30) == 5
    await asyncio.wait_for(end, 30)
