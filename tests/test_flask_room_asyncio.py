"""A Flask-SocketIO server (the sync API) relays one upload to a room of asyncio clients: every
member gets it intact, and a member that leaves mid-stream fails only its own sub-stream."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import socketio

from sio_stream import IOStream, create_stream, ss
from tests.flask_relay import make_app
from tests.support import wait_for
from tests.sync_support import serving

pytestmark = pytest.mark.anyio
MiB = 1024 * 1024
TIMEOUT = 120.0


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Member:
    """An asyncio client in the room that reads each ``file`` stream whole (or, with
    ``leave_after``, disconnects once that many bytes arrived)."""

    def __init__(self, leave_after: int | None = None) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.leave_after = leave_after
        self.failure: BaseException | None = None
        self.size = 0
        ss(self.client).on("file", self.on_file)

    async def on_file(self, stream: IOStream, meta: Any) -> str | None:
        digest = hashlib.sha256()
        try:
            async for chunk in stream:
                digest.update(chunk)
                self.size += len(chunk)
                if self.leave_after is not None and self.size >= self.leave_after:
                    asyncio.get_running_loop().create_task(self.client.disconnect())
                    self.leave_after = None  # and read on: the stream must fail
        except Exception as exc:
            self.failure = exc
            return None
        return digest.hexdigest()


@asynccontextmanager
async def flask_room(members: list[Member]) -> AsyncIterator[tuple[socketio.AsyncClient, Any, str]]:
    app, _, streams = make_app()
    with serving(app) as url:
        uploader = socketio.AsyncClient(reconnection=False)
        try:
            for member in members:
                await member.client.connect(url, transports=["websocket"])
                assert await member.client.call("join", timeout=TIMEOUT) is True
            await uploader.connect(url, transports=["websocket"])
            yield uploader, streams, url
        finally:
            for client in [uploader, *(member.client for member in members)]:
                if client.connected:
                    await client.disconnect()
        await wait_for(lambda: streams.stream_count() == 0, TIMEOUT)


async def upload(uploader: socketio.AsyncClient, data: bytes) -> Any:
    stream = create_stream()

    async def write() -> None:
        for offset in range(0, len(data), 200_000):
            await stream.write(data[offset : offset + 200_000])
        await stream.end()

    return await ss(uploader).call("share", stream, writer=write(), timeout=TIMEOUT)


async def test_a_room_of_four_asyncio_clients_gets_one_upload_intact() -> None:
    data = os.urandom(8 * MiB + 11)
    members = [Member() for _ in range(4)]
    async with flask_room(members) as (uploader, _, _):
        acks = await upload(uploader, data)
        assert acks == {member.client.get_sid(): sha(data) for member in members}
        assert [member.size for member in members] == [len(data)] * 4


async def test_a_member_that_leaves_mid_stream_does_not_stop_the_others() -> None:
    data = os.urandom(8 * MiB + 11)
    members = [Member(leave_after=MiB), Member(), Member(), Member()]
    async with flask_room(members) as (uploader, _, _):
        leaver_sid = members[0].client.get_sid()
        acks = await upload(uploader, data)
        assert acks.pop(leaver_sid).startswith("error: "), acks
        assert acks == {member.client.get_sid(): sha(data) for member in members[1:]}
        assert members[0].failure is not None and members[0].size < len(data)
