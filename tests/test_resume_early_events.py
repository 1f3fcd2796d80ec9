"""Negotiated ``resume`` for the events a client sends before the server's hello has come back
(issue 21): a client emits as soon as it is connected, without waiting a round trip for the
server's answer, so its first events travel before it knows the session can resume. A drop
that loses their answers must not lose the answers for good: they come after the resume, once
(an AsyncServer and an AsyncClient on 127.0.0.1 through ``benchmarks/link.py``'s cutting relay,
cut at chosen points)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio

import sio_stream
from benchmarks.link import Link
from sio_stream import ConnectionAbortedStreamError, IOStream, StreamError, create_stream
from tests.support import start_server, wait_for
from tests.test_session_resume import tolerate_socketio_cut_races

pytestmark = pytest.mark.anyio


class Early:
    """A server and a client whose connect handler emits ``calls`` at once (each a coroutine
    factory), before the server's hello can have come back; ``sent_at_hello`` records how many
    events the client had sent when the server's hello came (the scenario's precondition)."""

    def __init__(self) -> None:
        self.server = socketio.AsyncServer(async_mode="aiohttp")
        self.streams = sio_stream.ss(self.server, resume_timeout=30)
        self.client = socketio.AsyncClient(reconnection_delay=0.05, reconnection_delay_max=0.2)
        self.client_streams = sio_stream.ss(self.client, resume_timeout=30)
        self.sent_at_hello: list[int] = []
        self.calls: list[asyncio.Future[Any]] = []

    @contextlib.asynccontextmanager
    async def connected(self, *calls: Any) -> AsyncIterator[Link]:
        runner, url = await start_server(self.server)

        @self.client.on("connect")
        async def connect() -> None:
            if self.calls:
                return  # a reconnection
            core = self.client_streams._connections[None].core
            receive_hello = core.receive_hello

            def spy(info: Any) -> None:
                if not self.sent_at_hello:
                    self.sent_at_hello.append(core.sent_events.sent)
                receive_hello(info)

            core.receive_hello = spy  # type: ignore[method-assign]
            self.calls.extend(asyncio.ensure_future(call()) for call in calls)

        try:
            with tolerate_socketio_cut_races():
                async with Link(int(url.rsplit(":", 1)[1]), rtt=0.01) as link:
                    await self.client.connect(link.url, transports=["websocket"])
                    yield link
        finally:
            for call in self.calls:
                call.cancel()
            with contextlib.suppress(Exception):
                await self.client.disconnect()
            await self.server.shutdown()
            await runner.cleanup()


async def test_the_answer_to_an_event_sent_before_the_servers_hello_survives_a_drop() -> None:
    early = Early()
    release = asyncio.Event()
    runs: list[int] = []

    @early.streams.on("slow")
    async def slow(sid: str, n: int) -> int:
        runs.append(n)
        await release.wait()  # answered while the session is suspended, or after the resume
        return n * 10

    async with early.connected(lambda: early.client_streams.call("slow", 4, timeout=60)) as link:
        await wait_for(lambda: runs == [4] and bool(early.sent_at_hello))
        assert early.sent_at_hello == [1]  # the event left before the server's hello came back
        assert link.cut() == 1
        await wait_for(lambda: early.streams.statistics().suspended >= 1 or early.streams.resumes >= 1)
        release.set()  # python-socketio's ack goes to the dead transport: the resume must carry it
        assert await asyncio.wait_for(early.calls[0], 60) == 40
        assert early.client_streams.statistics().resumes == 1
        assert runs == [4]  # handled once


async def test_uploads_sent_before_the_servers_hello_get_their_answers_across_drops() -> None:
    """The benchmark's failure (``resume.py --only small``, 108 of 200 calls hung), at a
    chosen cut point: uploads emitted at once, every stream read in full by the server, the
    link cut before any answer leaves."""
    early = Early()
    count = 9
    data = [os.urandom(50_000 + 1_000 * n) for n in range(count)]
    read: list[int] = []
    gate = asyncio.Event()

    @early.streams.on("upload")
    async def upload(sid: str, n: int, stream: IOStream) -> str:
        body = await stream.read()
        read.append(n)
        await gate.wait()  # answers wait until the test has cut the link under them
        return hashlib.sha256(body).hexdigest()

    def one(n: int) -> Any:
        async def call() -> str:
            stream = create_stream()
            ended = asyncio.ensure_future(stream.end(data[n]))
            answer: str = await early.client_streams.call("upload", n, stream, timeout=60)
            await ended
            return answer

        return call

    async with early.connected(*(one(n) for n in range(count))) as link:
        await wait_for(lambda: len(read) == count and bool(early.sent_at_hello), 60)
        assert early.sent_at_hello[0] >= 1  # events left before the server's hello came back
        cuts = link.cut()
        await wait_for(lambda: early.streams.resumes >= 1, 60)
        gate.set()
        answers = await asyncio.wait_for(asyncio.gather(*early.calls), 60)
        assert cuts == 1
        assert answers == [hashlib.sha256(body).hexdigest() for body in data]
        assert sorted(read) == list(range(count))  # every event handled once


async def test_a_server_keeps_nothing_once_its_client_speaks_without_a_hello() -> None:
    """A plain python-socketio client stands for npm's socket.io-stream, which sends no hello:
    the server keeps its events only until the client's first stream event shows that."""
    server = socketio.AsyncServer(async_mode="aiohttp")
    streams = sio_stream.ss(server, resume_timeout=30)
    runner, url = await start_server(server)
    client = socketio.AsyncClient(reconnection=False)
    sids: list[str] = []
    got: list[Any] = []

    @server.on("connect")
    async def connect(sid: str, environ: Any, auth: Any = None) -> None:
        sids.append(sid)

    @client.on("$stream")
    async def news(*args: Any) -> None:
        got.append(args)

    try:
        await client.connect(url, transports=["websocket"])
        await wait_for(lambda: bool(sids))
        await streams.emit("news", 1, to=sids[0])  # its hello might still come: kept
        await wait_for(lambda: len(got) == 1)
        core = streams._connections[sids[0]].core
        assert len(core.sent_events) == 1
        await client.emit("$stream-read", ("no-such-stream", 1))  # its first stream event
        await wait_for(lambda: core.peer_known)
        assert len(core.sent_events) == 0 and not core.resumable
        await streams.emit("news", 2, to=sids[0])
        await wait_for(lambda: len(got) == 2)
        assert len(core.sent_events) == 0
    finally:
        await client.disconnect()
        await server.shutdown()
        await runner.cleanup()


async def test_a_deliberate_disconnect_before_the_servers_hello_closes_the_session() -> None:
    """A client that emits, writes and disconnects while the server's hello (with the session's
    token) is still on its way: the server already keeps a session, and must fail the upload at
    once rather than keep its handler waiting ``resume_timeout`` (seen under load, where a
    client's loop read the hello late; here the link holds it for a second)."""
    server = socketio.AsyncServer(async_mode="aiohttp")
    streams = sio_stream.ss(server, resume_timeout=60)
    client = socketio.AsyncClient()
    client_streams = sio_stream.ss(client, resume_timeout=60)
    ended: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    @streams.on("upload")
    async def upload(sid: str, stream: IOStream) -> None:
        try:
            await stream.read()
        except StreamError as exc:
            ended.set_result(exc)

    runner, url = await start_server(server)
    try:
        async with Link(int(url.rsplit(":", 1)[1])) as link:
            link.set_delay(down=1.0)
            await client.connect(link.url, transports=["websocket"], wait_timeout=60)
            stream = create_stream()
            await client_streams.emit("upload", stream)
            await stream.write(b"partial")
            await wait_for(lambda: streams.stream_count() == 1)
            assert client_streams._connections[None].token is None, "the server's hello came too soon"
            await client.disconnect()
            error = await asyncio.wait_for(ended, 20)
            assert isinstance(error, ConnectionAbortedStreamError)
            assert streams.stream_count() == 0
    finally:
        await runner.cleanup()
