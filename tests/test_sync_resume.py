"""Negotiated ``resume`` in the sync API: a ``socketio.Server`` (threading mode) and a
``socketio.Client`` on 127.0.0.1, through ``benchmarks/link.py``'s cutting relay (on a loop
thread of its own). Uploads, downloads and object streams cut mid-transfer arrive intact with
no error reaching the application; a sync client resumes with an asyncio server too; a client
that never returns fails its streams after ``resume_timeout``; a deliberate ``disconnect()``
still fails them at once."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio

from sio_stream import ConnectionAbortedStreamError, ResumeRefusedError, StreamError, sync
from sio_stream.core._config import DEFAULT_INITIAL_CREDIT
from tests.sync_support import eventually, sync_server
from tests.threaded_link import ThreadedLink, threaded_link

#: A write the stream cannot take at once, whatever initial credit the reader offered.
BEYOND_CREDIT = DEFAULT_INITIAL_CREDIT + (1 << 20)

MiB = 1024 * 1024
PIECE = 256 * 1024


@dataclass
class SyncSetup:
    server: socketio.Server
    streams: sync.StreamSocket
    client: socketio.Client
    client_streams: sync.StreamSocket
    link: ThreadedLink
    sids: list[str] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def record(self, value: Any) -> None:
        self.results.append(value)
        self.done.set()

    def token(self) -> str | None:
        connection = self.client_streams._connections.get(None)
        return None if connection is None else connection.token


def produce(setup: SyncSetup, stream: sync.IOStream, data: bytes) -> None:
    try:
        for i in range(0, len(data), PIECE):
            stream.write(data[i : i + PIECE])
        stream.end()
        setup.record("sent")
    except StreamError as exc:
        setup.record(exc)


@contextmanager
def sync_session(
    *, server_timeout: float = 30, client_timeout: float = 30, reconnection: bool = True, rtt: float = 0.01
) -> Iterator[SyncSetup]:
    with sync_server() as (server, url):
        streams = sync.ss(server, resume_timeout=server_timeout)
        with threaded_link(int(url.rsplit(":", 1)[1]), rtt=rtt) as link:
            client = socketio.Client(
                reconnection=reconnection, reconnection_delay=0.05, reconnection_delay_max=0.2
            )
            client_streams = sync.ss(client, resume_timeout=client_timeout)
            setup = SyncSetup(server, streams, client, client_streams, link)

            @server.on("connect")
            def connect(sid: str, environ: Any, auth: Any = None) -> None:
                setup.sids.append(sid)

            @streams.on("upload")
            def upload(sid: str, stream: sync.IOStream) -> None:
                digest, size = hashlib.sha256(), 0
                try:
                    for chunk in stream:
                        digest.update(chunk)
                        size += len(chunk)
                except StreamError as exc:
                    setup.record(exc)
                    return
                setup.record((size, digest.hexdigest()))

            @streams.on("download")
            def download(sid: str, size: int) -> sync.IOStream:
                stream = sync.create_stream()
                data = os.urandom(size)
                setup.results.append(hashlib.sha256(data).hexdigest())
                server.start_background_task(produce, setup, stream, data)
                return stream

            try:
                client.connect(link.url, transports=["websocket"])
                eventually(
                    lambda: len(setup.sids) == 1 and (server_timeout == 0 or setup.token() is not None)
                )
                yield setup
            finally:
                with suppress(Exception):
                    client.disconnect()


def empty(setup: SyncSetup) -> bool:
    return setup.streams.stream_count() == 0 and setup.client_streams.stream_count() == 0


def nothing_retained(setup: SyncSetup) -> bool:
    return all(
        c.retained == 0 and c.held == 0
        for s in (setup.streams, setup.client_streams)
        for c in s.statistics().connections
    )


def cut_when_back(setup: SyncSetup, cuts: int) -> None:
    """Cut the link once the client is back from its ``cuts`` earlier cuts: on busy cores the
    application may write (or read) past the next cut point while the client still reconnects,
    and the cut then met no connection (``assert setup.link.cut() == 1`` failed)."""
    eventually(lambda: setup.client_streams.statistics().resumes == cuts, 30)
    assert setup.link.cut() == 1  # mid-transfer: chunks and credit are in flight


def test_a_sync_upload_cut_three_times_arrives_intact() -> None:
    with sync_session() as setup:
        data = os.urandom(6 * MiB)
        stream = sync.create_stream()
        setup.client_streams.emit("upload", stream)
        cut_at = (MiB, 5 * MiB // 2, 4 * MiB)
        for i in range(0, len(data), PIECE):
            if i in cut_at:
                cut_when_back(setup, cut_at.index(i))
            stream.write(data[i : i + PIECE], timeout=30)
        stream.end(timeout=30)
        assert setup.done.wait(30)
        assert setup.results == [(len(data), hashlib.sha256(data).hexdigest())]
        assert stream.error is None
        assert setup.streams.statistics().resumes == 3
        assert setup.client_streams.statistics().resumes == 3
        assert len(setup.sids) == 4  # each resume rode a new python-socketio connection
        eventually(lambda: empty(setup) and nothing_retained(setup))
        assert setup.streams.statistics().suspended == 0


def test_a_sync_download_cut_three_times_arrives_intact() -> None:
    with sync_session() as setup:
        size = 6 * MiB
        stream = setup.client_streams.call("download", size, timeout=20)
        received = bytearray()
        cuts = 0
        for chunk in stream:
            received += chunk
            if cuts < 3 and len(received) >= (cuts + 1) * 3 * MiB // 2:
                cut_when_back(setup, cuts)
                cuts += 1
        assert cuts == 3
        assert len(received) == size
        eventually(lambda: len(setup.results) == 2)
        assert setup.results[1] == "sent"
        assert hashlib.sha256(received).hexdigest() == setup.results[0]
        # The last cut may come once everything arrived: its resume may follow the last chunk.
        eventually(lambda: setup.client_streams.statistics().resumes == 3)
        eventually(lambda: empty(setup) and nothing_retained(setup))


def test_sync_object_streams_survive_cuts() -> None:
    with sync_session() as setup:
        got: list[Any] = []

        @setup.streams.on("objects")
        def objects(sid: str, stream: sync.IOStream) -> None:
            got.extend(stream)
            setup.done.set()

        stream = sync.create_stream(object_mode=True)
        setup.client_streams.emit("objects", stream)
        sent = [{"n": i, "pad": "x" * (i % 50)} for i in range(3000)]
        for i, value in enumerate(sent):
            if i in (1000, 2000):
                setup.link.cut()
            stream.write(value, timeout=30)
        stream.end(timeout=30)
        assert setup.done.wait(30)
        assert got == sent
        eventually(lambda: empty(setup) and nothing_retained(setup))


def test_a_sync_client_that_never_returns_fails_its_streams_after_the_timeout() -> None:
    with sync_session(server_timeout=0.5, reconnection=False) as setup:
        stream = sync.create_stream()
        setup.client_streams.emit("upload", stream)
        stream.write(b"x" * 1000)
        eventually(lambda: setup.streams.stream_count() == 1)
        setup.link.cut()
        # The client does not reconnect: its side fails at once.
        with pytest.raises(ConnectionAbortedStreamError):
            stream.write(b"y" * BEYOND_CREDIT, timeout=5)
        eventually(lambda: setup.streams.statistics().suspended == 1, 5)
        # The server's copy waits resume_timeout for the client, then fails.
        assert setup.done.wait(5)
        assert isinstance(setup.results[0], ConnectionAbortedStreamError)
        assert setup.streams.statistics().suspended == 0 and setup.streams._sessions == {}
        eventually(lambda: empty(setup))


def test_a_deliberate_sync_disconnect_fails_the_streams_at_once() -> None:
    with sync_session() as setup:
        stream = sync.create_stream()
        setup.client_streams.emit("upload", stream)
        stream.write(b"x" * 1000)
        eventually(lambda: setup.streams.stream_count() == 1)
        setup.client.disconnect()
        # Not the 30 s of resume_timeout: the server was told before the socket closed.
        assert setup.done.wait(5)
        assert isinstance(setup.results[0], ConnectionAbortedStreamError)
        assert isinstance(stream.error, ConnectionAbortedStreamError)
        assert setup.streams.statistics().suspended == 0 and setup.streams._sessions == {}
        eventually(lambda: empty(setup))


def test_a_refused_sync_resume_fails_the_clients_streams_with_a_typed_error() -> None:
    with sync_session(server_timeout=0.5) as setup:
        stream = sync.create_stream()
        setup.client_streams.emit("upload", stream)
        stream.write(b"x" * 1000)
        eventually(lambda: setup.streams.stream_count() == 1)
        setup.streams._sessions.clear()  # the server forgot the session (say it restarted)
        setup.link.cut()
        with pytest.raises(ResumeRefusedError):
            stream.write(b"y" * BEYOND_CREDIT, timeout=10)
        assert setup.done.wait(5)
        assert isinstance(setup.results[0], ConnectionAbortedStreamError)
        eventually(lambda: empty(setup))
        # The new connection works.
        setup.done.clear()
        again = sync.create_stream()
        setup.client_streams.emit("upload", again)
        again.end(b"z" * 10)
        assert setup.done.wait(10)
        assert setup.results[1][0] == 10


def test_resume_timeout_zero_keeps_the_sync_apis_old_behaviour() -> None:
    with sync_session(server_timeout=0, client_timeout=0) as setup:
        stream = sync.create_stream()
        setup.client_streams.emit("upload", stream)
        stream.write(b"x" * 1000)
        eventually(lambda: setup.streams.stream_count() == 1)
        setup.link.cut()
        assert setup.done.wait(5)
        assert isinstance(setup.results[0], ConnectionAbortedStreamError)
        with pytest.raises(ConnectionAbortedStreamError):
            stream.write(b"y" * BEYOND_CREDIT, timeout=5)
        assert setup.streams._sessions == {}


@contextmanager
def asyncio_server_thread() -> Iterator[tuple[str, list[Any], threading.Event, Any]]:
    """An AsyncServer (aiohttp) on a loop thread of its own, with an "upload" handler that
    records ``(size, sha256)``; yields its URL, the records, an event set per record, the socket."""
    import asyncio

    import sio_stream
    from tests.support import start_server

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="asyncio server", daemon=True)
    thread.start()
    results: list[Any] = []
    done = threading.Event()

    async def setup() -> tuple[Any, Any, str, Any]:
        server = socketio.AsyncServer(async_mode="aiohttp")
        streams = sio_stream.ss(server)

        @streams.on("upload")
        async def upload(sid: str, stream: Any) -> None:
            digest, size = hashlib.sha256(), 0
            try:
                async for chunk in stream:
                    digest.update(chunk)
                    size += len(chunk)
            except StreamError as exc:
                results.append(exc)
            else:
                results.append((size, digest.hexdigest()))
            done.set()

        runner, url = await start_server(server)
        return server, runner, url, streams

    server, runner, url, streams = asyncio.run_coroutine_threadsafe(setup(), loop).result(30)
    try:
        yield url, results, done, streams
    finally:

        async def stop() -> None:
            await server.shutdown()
            await runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def test_a_sync_client_resumes_with_an_asyncio_server() -> None:
    with (
        asyncio_server_thread() as (url, results, done, server_streams),
        threaded_link(int(url.rsplit(":", 1)[1]), rtt=0.01) as link,
    ):
        client = socketio.Client(reconnection_delay=0.05, reconnection_delay_max=0.2)
        streams = sync.ss(client)
        client.connect(link.url, transports=["websocket"])
        try:
            eventually(lambda: streams._connections[None].token is not None)
            data = os.urandom(4 * MiB)
            stream = sync.create_stream()
            streams.emit("upload", stream)
            cuts = 0
            for i in range(0, len(data), PIECE):
                if i in (MiB, 3 * MiB):
                    # The asyncio server offers initial credit, so these writes need not wait for
                    # the link: on busy cores the second cut came before the first resume and
                    # found no connection to cut. Each cut waits for the session to be back.
                    eventually(lambda cuts=cuts: streams.statistics().resumes == cuts)
                    assert link.cut() == 1
                    cuts += 1
                stream.write(data[i : i + PIECE], timeout=30)
            stream.end(timeout=30)
            assert done.wait(30)
            assert results == [(len(data), hashlib.sha256(data).hexdigest())]
            assert streams.statistics().resumes == 2
            assert server_streams.resumes == 2
        finally:
            client.disconnect()


def test_sync_uploads_survive_a_link_that_keeps_cutting() -> None:
    # A smaller real-socket sweep: cuts land wherever the transfer is (inside a binary
    # attachment, during an end, during a resume hello), 6 uploads one after the other.
    with sync_session() as setup:
        sizes = [1, 300_000, 2 * MiB + 7, 65_536, 3 * MiB, 1_000_003]
        cuts = 0
        for n, size in enumerate(sizes):
            setup.done.clear()
            data = os.urandom(size)
            stream = sync.create_stream()
            setup.client_streams.emit("upload", stream)
            for i in range(0, len(data), 64 * 1024):
                if (i // (64 * 1024)) % 9 == n % 9:
                    cuts += setup.link.cut()
                stream.write(data[i : i + 64 * 1024], timeout=30)
            if n % 2:
                cuts += setup.link.cut()  # just before the end
            stream.end(timeout=30)
            assert setup.done.wait(30)
            assert setup.results[-1] == (size, hashlib.sha256(data).hexdigest())
        assert len(setup.results) == len(sizes) and cuts >= 10
        eventually(lambda: empty(setup) and nothing_retained(setup))


def test_a_sync_call_whose_answer_is_lost_in_a_drop_gets_it_after_the_resume() -> None:
    with sync_session() as setup:
        release = threading.Event()
        runs: list[int] = []

        @setup.streams.on("slow")
        def slow(sid: str, n: int) -> int:
            runs.append(n)
            release.wait(30)  # answers after the drop: python-socketio's ack goes to the dead sid
            return n * 10

        answers: list[Any] = []
        caller = threading.Thread(
            target=lambda: answers.append(setup.client_streams.call("slow", 4, timeout=30))
        )
        caller.start()
        eventually(lambda: runs == [4])
        assert setup.link.cut() == 1
        eventually(lambda: setup.client_streams.statistics().resumes == 1)
        release.set()
        caller.join(30)
        assert answers == [40] and runs == [4]
