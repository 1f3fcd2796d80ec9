"""Relays: a stream one client sends, emitted by the server to another client (or a room),
over a real server and real clients."""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

import pytest
import socketio

from sio_stream import StreamBrokenError, create_stream, ss
from tests.support import wait_for
from tests.test_faults import _from_sio_stream

pytestmark = pytest.mark.anyio

DATA = os.urandom(5 * 1024 * 1024 + 7)


def relay_server(pair: Any) -> None:
    streams = pair.server_streams

    @streams.on("send-to")
    async def send_to(sid: str, stream: Any, target: Any) -> Any:
        # The whole relay: emit the stream the sender is writing; the answer is the recipient's.
        return await streams.call("file", stream, {"from": sid}, to=target)


def receiving_client(
    client: socketio.AsyncClient, got: asyncio.Future[bytes], *, stall: bool = False
) -> None:
    @ss(client).on("file")
    async def on_file(stream: Any, meta: Any) -> str:
        try:
            data = await stream.read()
        except StreamBrokenError as exc:
            got.set_exception(exc)
            raise
        got.set_result(data)
        return hashlib.sha256(data).hexdigest()


async def test_a_relay_carries_the_stream_to_the_other_client(pair):
    relay_server(pair)
    receiver = await pair.new_client()
    await wait_for(lambda: len(pair.connected) == 2)
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    receiving_client(receiver, got)
    try:
        stream = create_stream()
        reply = asyncio.create_task(pair.client_streams.call("send-to", stream, pair.connected[-1]))
        for i in range(0, len(DATA), 300_000):
            await stream.write(DATA[i : i + 300_000])
        await stream.end()
        assert await asyncio.wait_for(reply, 60) == hashlib.sha256(DATA).hexdigest()
        assert await got == DATA
        await wait_for(lambda: pair.server_streams.stream_count() == 0)
    finally:
        await receiver.disconnect()


async def test_a_relay_to_a_room(pair):
    relay_server(pair)
    receivers = [await pair.new_client() for _ in range(3)]
    await wait_for(lambda: len(pair.connected) == 4)
    futures: list[asyncio.Future[bytes]] = []
    for client, sid in zip(receivers, pair.connected[1:], strict=True):
        await pair.server.enter_room(sid, "room")
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        receiving_client(client, future)
        futures.append(future)
    try:
        stream = create_stream()
        reply = asyncio.create_task(pair.client_streams.call("send-to", stream, "room"))
        await stream.end(DATA)
        digest = hashlib.sha256(DATA).hexdigest()
        assert await asyncio.wait_for(reply, 60) == {sid: digest for sid in pair.connected[1:]}
        assert [await f for f in futures] == [DATA] * 3
    finally:
        for client in receivers:
            await client.disconnect()


async def test_the_sender_fails_when_the_recipient_leaves(pair):
    # The receiver leaves with binary frames in flight, which python-socketio's client may
    # then fail to parse in a background task (see tests/test_files.py settle()): only errors
    # of ours count.
    loop = asyncio.get_running_loop()
    loop_errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    try:
        await _sender_fails_when_the_recipient_leaves(pair)
    finally:
        loop.set_exception_handler(previous)
    assert [c for c in loop_errors if _from_sio_stream(c)] == []


async def _sender_fails_when_the_recipient_leaves(pair: Any) -> None:
    relay_server(pair)
    receiver = await pair.new_client()
    await wait_for(lambda: len(pair.connected) == 2)
    started = asyncio.Event()

    @ss(receiver).on("file")
    async def on_file(stream: Any, meta: Any) -> None:
        await stream.read(1)
        started.set()
        await asyncio.Event().wait()

    stream = create_stream()
    reply = asyncio.create_task(pair.client_streams.call("send-to", stream, pair.connected[-1]))
    await stream.write(DATA[:1_000_000])
    await asyncio.wait_for(started.wait(), 60)
    await receiver.disconnect()
    # The sender learns at once that its relay failed: "every recipient left", or the
    # handler's own failure when its call() to the recipient fails first.
    with pytest.raises(StreamBrokenError, match=r"every recipient left|Connection aborted"):
        for i in range(0, len(DATA), 100_000):
            await stream.write(DATA[i : i + 100_000])
        await stream.end()
    reply.cancel()
    await wait_for(lambda: pair.server_streams.stream_count() == 0)


async def test_the_recipient_fails_when_the_sender_leaves(pair):
    relay_server(pair)
    sender = await pair.new_client()
    await wait_for(lambda: len(pair.connected) == 2)
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    receiving_client(pair.client, got)
    stream = create_stream()
    reply = asyncio.create_task(ss(sender).call("send-to", stream, pair.connected[0]))
    await stream.write(DATA[:1_000_000])
    await sender.disconnect()
    with pytest.raises(StreamBrokenError, match="Connection aborted"):
        await asyncio.wait_for(got, 60)
    reply.cancel()
    await wait_for(lambda: pair.server_streams.stream_count() == 0)
