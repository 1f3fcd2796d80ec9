"""The sync API (sio_stream.sync) on socketio.Server/Client in threading mode, Flask-SocketIO, and
across the sync/async divide, on real loopback connections."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import shutil
import tarfile
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import blake3
import pytest
import socketio

import sio_stream
from sio_stream import (
    ConnectionAbortedStreamError,
    HandlerError,
    LocalProtocolError,
    StreamBrokenError,
    StreamError,
    StreamTimeoutError,
    TransferTooLarge,
    sync,
)
from sio_stream.sync._stream import LOCK
from tests.sync_support import eventually, serving, sync_client, sync_server

MiB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_of(stream: Any, data: bytes) -> str:
    """The digest ``stream`` carried of ``data``, by the algorithm it used: send_file's "auto"
    is blake3 once the hello round trip ended, sha256 before."""
    name = stream._core.digest_name
    assert name in ("blake3", "sha256")
    return blake3.blake3(data).hexdigest() if name == "blake3" else sha(data)


def install_handlers(streams: sync.StreamSocket, sio: Any) -> None:
    """Upload (sha of what arrives), download (a stream in the ack), echo (piped back)."""

    @streams.on("upload")
    def upload(sid: str, stream: sync.IOStream, meta: dict[str, Any]) -> Any:
        digest = hashlib.sha256()
        size = 0
        for chunk in stream:
            digest.update(chunk)
            size += len(chunk)
        return {"name": meta["name"], "size": size, "sha": digest.hexdigest()}

    @streams.on("download")
    def download(sid: str, size: int) -> Any:
        data = os.urandom(size)
        stream = sync.create_stream()
        sio.start_background_task(stream.end, data)
        return stream, sha(data)

    @streams.on("echo")
    def echo(sid: str, stream: sync.IOStream) -> Any:
        back = sync.create_stream()
        sio.start_background_task(sync.pipe, stream, back)
        return back


#: Initial credit both ends offer where a test asks for it (``sync_pair`` parametrized).
OFFER = 16 * MiB


@pytest.fixture
def sync_pair(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[sync.StreamSocket, sync.StreamSocket, socketio.Server, socketio.Client]]:
    offer = getattr(request, "param", 0)  # ss(initial_credit=) of both ends
    with sync_server() as (sio, url), sync_client(url) as client:
        server_streams = sync.ss(sio, initial_credit=offer)
        install_handlers(server_streams, sio)
        client_streams = sync.ss(client, initial_credit=offer)
        client.connect(url, transports=["websocket"])
        yield server_streams, client_streams, sio, client
        client.disconnect()
        eventually(lambda: server_streams.stream_count() == 0 and client_streams.stream_count() == 0)


def claim_a_wrong_digest(stream: sync.IOStream) -> None:
    """The writer of ``stream`` will send with its end the digest of other bytes than it sends."""
    with LOCK:
        stream._owner.use_digest(stream._core, "sha256", external=True)
        stream._owner.set_digest(stream._core, sha(b"something else"))


def write_in_thread(stream: sync.IOStream, data: bytes, piece: int = 100_000) -> threading.Thread:
    def run() -> None:
        for offset in range(0, len(data), piece):
            stream.write(data[offset : offset + piece])
        stream.end()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


# -- sync <-> sync --------------------------------------------------------------------------------------
@pytest.mark.parametrize("sync_pair", [0, OFFER], ids=["no-offer", "offer"], indirect=True)
def test_upload_download_and_echo(sync_pair) -> None:
    server_streams, client_streams, _, client = sync_pair
    client_core = client_streams._connections[None].core
    eventually(lambda: client_core.peer_offer_seen)
    server_core = server_streams._connections[client.get_sid()].core
    offered = client_core.peer_offer is not None
    assert offered is (client_core.initial_offer is not None) is bool(server_streams._config.initial_credit)
    data = os.urandom(5 * MiB + 7)
    stream = sync.create_stream()
    writer = write_in_thread(stream, data)
    reply = client_streams.call("upload", stream, {"name": "a"}, timeout=None)
    writer.join()
    assert reply == {"name": "a", "size": len(data), "sha": sha(data)}

    down, digest = client_streams.call("download", 3 * MiB)
    assert sha(down.read(timeout=30)) == digest

    out = sync.create_stream()
    back = client_streams.call("echo", out)
    writer = write_in_thread(out, data[:MiB], 65537)
    assert back.read(timeout=30) == data[:MiB]
    writer.join()
    # The upload took the server's offer, the download the client's (both primed, both intact).
    assert client_core.peer_offer is None and client_core.initial_offer is None
    assert not server_core.early.held and server_core.early.bytes == 0


@pytest.mark.parametrize("sync_pair", [0, OFFER], ids=["no-offer", "offer"], indirect=True)
def test_streams_from_many_threads_arrive_complete_and_in_order(sync_pair) -> None:
    _, client_streams, _, _ = sync_pair
    results: dict[int, Any] = {}

    def one(n: int) -> None:
        data = os.urandom(200_000 + n)
        stream = sync.create_stream()
        writer = write_in_thread(stream, data, 1000 + n)
        results[n] = (client_streams.call("upload", stream, {"name": str(n)})["sha"], sha(data))
        writer.join()

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 8 and all(a == b for a, b in results.values())


def test_object_mode_and_emit_with_callback(sync_pair) -> None:
    server_streams, client_streams, _, _ = sync_pair
    got: list[Any] = []
    done = threading.Event()

    @server_streams.on("objects")
    def objects(sid: str, stream: sync.IOStream) -> int:
        got.extend(stream)
        return len(got)

    acks: list[Any] = []
    stream = sync.create_stream(object_mode=True)
    client_streams.emit("objects", stream, callback=lambda n: (acks.append(n), done.set()))
    for value in ({"a": 1}, [1, 2], "text", 3.5, True):
        stream.write(value)
    stream.end()
    assert done.wait(30)
    assert got == [{"a": 1}, [1, 2], "text", 3.5, True] and acks == [5]


def test_destroy_reaches_the_peer_and_handler_errors_are_typed(sync_pair) -> None:
    server_streams, client_streams, _, _ = sync_pair

    @server_streams.on("refuse")
    def refuse(sid: str, stream: sync.IOStream) -> None:
        stream.destroy(PermissionError("uploads are closed"))

    @server_streams.on("boom")
    def boom(sid: str) -> None:
        raise RuntimeError("/secret/path")

    stream = sync.create_stream()
    client_streams.emit("refuse", stream)
    with pytest.raises(StreamBrokenError) as info:
        while True:
            stream.write(b"x" * 65536, timeout=30)
    assert info.value.remote and info.value.message == "uploads are closed"
    with pytest.raises(HandlerError) as failure:
        client_streams.call("boom")
    assert "secret" not in str(failure.value) and "RuntimeError" in str(failure.value)


def test_every_blocking_call_takes_a_timeout_and_the_stream_survives_it(sync_pair) -> None:
    server_streams, client_streams, _, _ = sync_pair
    received: list[sync.IOStream] = []
    arrived = threading.Event()

    @server_streams.on("hold")
    def hold(sid: str, stream: sync.IOStream) -> None:
        received.append(stream)
        arrived.set()

    stream = sync.create_stream(high_water_mark=1024)
    client_streams.emit("hold", stream)
    assert arrived.wait(30)
    reader = received[0]
    with pytest.raises(StreamTimeoutError):
        reader.read(10, timeout=0.2)
    stream.write(b"hello", timeout=5)
    assert reader.read(5, timeout=30) == b"hello"
    release = threading.Event()
    server_streams.on("stall", lambda sid: release.wait(30))
    with pytest.raises(StreamTimeoutError):
        client_streams.call("stall", timeout=0.5)
    release.set()
    stream.end(timeout=30)
    assert reader.read(timeout=30) == b""


def test_file_views_copyfileobj_bufferedreader_and_tarfile(sync_pair, tmp_path) -> None:
    server_streams, client_streams, _, _ = sync_pair
    names: dict[str, bytes] = {}

    @server_streams.on("tar")
    def tar(sid: str, stream: sync.IOStream) -> list[str]:
        with tarfile.open(fileobj=stream.as_raw(timeout=30), mode="r|*") as archive:
            for member in archive:
                extracted = archive.extractfile(member)
                assert extracted is not None
                names[member.name] = extracted.read()
        # tarfile stops at the end-of-archive blocks, maybe before the writer's end arrived:
        # wait for it, or the view's finalizer closes a stream still being read, which destroys
        # it under the writer (seen under load: "stream closed by the reader").
        stream.read(timeout=30)
        return sorted(names)

    files = {"a.txt": os.urandom(100_000), "b.bin": os.urandom(3000)}
    stream = sync.create_stream()

    def write_archive() -> None:
        # As the call's writer, so the stream is sent before it is closed (a thread of our own
        # could close it first: closing a stream never sent destroys it).
        with tarfile.open(fileobj=stream.as_raw(timeout=30), mode="w|gz") as archive:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        stream.close(timeout=30)

    assert client_streams.call("tar", stream, timeout=60, writer=write_archive) == ["a.txt", "b.bin"]
    assert names == files

    down, digest = client_streams.call("download", MiB)
    sink = io.BytesIO()
    shutil.copyfileobj(io.BufferedReader(down.as_raw(timeout=30)), sink)
    assert sha(sink.getvalue()) == digest


def test_send_file_receive_file_and_max_bytes(sync_pair, tmp_path) -> None:
    server_streams, client_streams, _, _ = sync_pair
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(2 * MiB + 3))
    outcome: list[Any] = []

    @server_streams.on("store")
    def store(sid: str, stream: sync.IOStream, name: str, limit: int | None) -> Any:
        try:
            return sync.receive_file(stream, tmp_path / name, max_bytes=limit, timeout=30)
        except StreamError as exc:
            outcome.append(exc)
            return str(exc)

    progress: list[tuple[int, Any]] = []
    stream = sync.create_stream()
    result: list[Any] = []
    caller = threading.Thread(
        target=lambda: result.append(client_streams.call("store", stream, "copy", None))
    )
    caller.start()
    assert (
        sync.send_file(stream, source, progress=lambda d, t: progress.append((d, t))) == source.stat().st_size
    )
    caller.join(60)
    assert result == [source.stat().st_size] and (tmp_path / "copy").read_bytes() == source.read_bytes()
    assert progress[-1] == (source.stat().st_size, source.stat().st_size)

    stream = sync.create_stream()
    caller = threading.Thread(target=lambda: client_streams.call("store", stream, "small", 1000))
    caller.start()
    with pytest.raises(StreamBrokenError, match="limit of 1000 bytes"):
        sync.send_file(stream, source, timeout=30)
    caller.join(60)
    assert isinstance(outcome[0], TransferTooLarge) and not (tmp_path / "small").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_send_file_digest_is_checked_and_a_wrong_one_leaves_no_file(sync_pair, tmp_path) -> None:
    server_streams, client_streams, _, _ = sync_pair
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(MiB + 5))
    outcome: list[Any] = []

    @server_streams.on("store")
    def store(sid: str, stream: sync.IOStream, name: str) -> Any:
        try:
            done = sync.receive_file(stream, tmp_path / name, timeout=30)
            outcome.append(stream.digest)
            return done
        except StreamError as exc:
            outcome.append(exc)
            return "failed"

    stream = sync.create_stream()
    caller = threading.Thread(target=lambda: client_streams.call("store", stream, "copy", timeout=60))
    caller.start()
    assert sync.send_file(stream, source, timeout=30) == source.stat().st_size
    caller.join(60)
    assert stream.digest == digest_of(stream, source.read_bytes()) == outcome[0]
    assert (tmp_path / "copy").read_bytes() == source.read_bytes()

    # A writer whose digest is not that of its bytes: both ends fail, no file is left.
    stream = sync.create_stream()
    caller = threading.Thread(target=lambda: client_streams.call("store", stream, "bad", timeout=60))
    caller.start()
    claim_a_wrong_digest(stream)
    stream.write(b"x" * 1000)
    with pytest.raises(StreamError):
        stream.end(timeout=30)
    caller.join(60)
    assert type(outcome[1]).__name__ == "IntegrityError"
    assert not (tmp_path / "bad").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_receive_file_resumes_from_a_partial_file(sync_pair, tmp_path) -> None:
    server_streams, client_streams, _, _ = sync_pair
    data = os.urandom(3 * MiB + 11)
    source, target, partial = tmp_path / "source.bin", tmp_path / "copy.bin", tmp_path / ".copy.part"
    source.write_bytes(data)
    partial.write_bytes(data[:MiB])  # what an interrupted transfer left

    @server_streams.on("resume")
    def resume(sid: str, stream: sync.IOStream, offset: int) -> Any:
        try:
            return sync.receive_file(stream, target, partial=partial, offset=offset, timeout=30)
        except StreamError as exc:
            return f"{type(exc).__name__}: {exc}"

    def resume_from(offset: int, sent_from: int) -> tuple[Any, Any]:
        stream = sync.create_stream()
        result: list[Any] = []
        caller = threading.Thread(target=lambda: result.append(client_streams.call("resume", stream, offset)))
        caller.start()
        try:
            sent: Any = sync.send_file(stream, source, offset=sent_from, timeout=30)
        except StreamError as exc:
            sent = exc
        caller.join(60)
        return sent, result[0]

    # An offset that is not what is stored: refused, the stored bytes untouched.
    sent, reply = resume_from(5000, 5000)
    assert reply.startswith("ResumeError") and "5000" in reply and isinstance(sent, StreamError)
    assert partial.read_bytes() == data[:MiB] and not target.exists()

    with pytest.raises(sio_stream.ResumeError):
        sync.send_file(sync.create_stream(), source, offset=len(data) + 1)

    sent, reply = resume_from(MiB, MiB)
    assert sent == reply == len(data) - MiB
    assert target.read_bytes() == data and not partial.exists()


def test_a_cut_or_a_wrong_digest_keeps_only_what_is_right_in_the_partial_file(sync_pair, tmp_path) -> None:
    server_streams, client_streams, _, _ = sync_pair
    data = os.urandom(3 * MiB)
    target, partial = tmp_path / "copy.bin", tmp_path / ".copy.part"
    partial.write_bytes(data[:1000])
    outcome: list[Any] = []
    arrived = threading.Event()

    @server_streams.on("resume")
    def resume(sid: str, stream: sync.IOStream, offset: int) -> None:
        def progress(done: int, total: Any) -> None:
            if done >= MiB:
                arrived.set()

        try:
            sync.receive_file(stream, target, partial=partial, offset=offset, progress=progress, timeout=30)
        except StreamError as exc:
            outcome.append(exc)

    # A cut after more than a MiB arrived: the partial file keeps a longer, correct prefix.
    stream = sync.create_stream()
    client_streams.emit("resume", stream, 1000)
    writer = threading.Thread(target=lambda: suppress_stream_error(stream.write, data[1000 : 1000 + 2 * MiB]))
    writer.start()
    assert arrived.wait(30)
    stream.destroy("cut")
    writer.join(30)
    eventually(lambda: len(outcome) == 1)
    stored = partial.read_bytes()
    assert len(stored) > MiB and stored == data[: len(stored)] and not target.exists()

    # A writer whose digest is not that of its bytes: the partial file goes back to the offset.
    offset = len(stored)
    stream = sync.create_stream()
    client_streams.emit("resume", stream, offset)
    claim_a_wrong_digest(stream)
    stream.write(data[offset : offset + MiB])
    with pytest.raises(StreamError):
        stream.end(timeout=30)
    eventually(lambda: len(outcome) == 2)
    assert type(outcome[1]).__name__ == "IntegrityError"
    assert partial.read_bytes() == stored and not target.exists()


def suppress_stream_error(write: Any, data: bytes) -> None:
    # The test destroys the stream while this write waits.
    with contextlib.suppress(StreamError):
        write(data, timeout=30)


def test_disconnect_mid_transfer_fails_both_ends(sync_pair) -> None:
    server_streams, client_streams, sio, _ = sync_pair
    failures: list[BaseException] = []
    started = threading.Event()

    @server_streams.on("slow")
    def slow(sid: str, stream: sync.IOStream) -> None:
        try:
            stream.read(1000, timeout=30)
            started.set()
            sio.disconnect(sid)
            stream.read(timeout=30)
        except StreamError as exc:
            failures.append(exc)

    stream = sync.create_stream()
    client_streams.emit("slow", stream)
    with pytest.raises((ConnectionAbortedStreamError, StreamBrokenError)):
        while True:
            stream.write(b"y" * 65536, timeout=30)
    assert started.wait(30)
    eventually(lambda: bool(failures))
    assert "Connection aborted" in str(failures[0])


def test_a_hostile_peer_meets_the_limits() -> None:
    with sync_server() as (sio, url), sync_client(url) as client:
        server_streams = sync.ss(sio, max_placeholders=2)
        called: list[Any] = []
        server_streams.on("many", lambda sid, *streams: called.append(streams))
        client_streams = sync.ss(client)
        client.connect(url, transports=["websocket"])
        streams = [sync.create_stream() for _ in range(3)]
        with pytest.raises(HandlerError, match="more than 2 streams"):
            client_streams.call("many", *streams)
        assert not called
        for stream in streams:
            with pytest.raises(StreamError):
                stream.write(b"x" * 65536 * 8, timeout=30)
                stream.end(timeout=30)
        eventually(lambda: server_streams.stream_count() == 0)


def test_an_ack_never_overtakes_our_hello(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's hello goes out from its sender thread, a handler's ack from the handler's
    thread: with the hello held back 50 ms (a slow sender), a refusal still reaches the client
    as a HandlerError, because the client knows the server's features by then."""
    import time

    from sio_stream.core import _wire
    from sio_stream.sync._host import SyncHost

    emitter = SyncHost.emitter

    def slow_hello(self: SyncHost, peer: Any) -> Any:
        emit = emitter(self, peer)

        def emitting(event: str, args: tuple[Any, ...], callback: Any) -> None:
            if event == _wire.HELLO and self.is_server:
                time.sleep(0.05)  # fault injection: a sender thread that runs late
            emit(event, args, callback)

        return emitting

    monkeypatch.setattr(SyncHost, "emitter", slow_hello)
    with sync_server() as (sio, url), sync_client(url) as client:
        server_streams = sync.ss(sio, max_placeholders=1)
        server_streams.on("two", lambda sid, *streams: len(streams))
        client_streams = sync.ss(client)
        client.connect(url, transports=["websocket"])
        for _ in range(3):
            with pytest.raises(HandlerError, match="more than 1 stream"):
                client_streams.call("two", sync.create_stream(), sync.create_stream(), timeout=30)


def test_wrong_hosts_and_async_handlers_false_are_refused_clearly() -> None:
    with pytest.raises(LocalProtocolError, match="async_handlers=True"):
        sync.ss(socketio.Server(async_mode="threading", async_handlers=False))
    with pytest.raises(TypeError, match=r"use sio_stream\.ss"):
        sync.ss(socketio.AsyncServer())
    with pytest.raises(TypeError, match=r"use sio_stream\.sync\.ss"):
        sio_stream.ss(socketio.Server(async_mode="threading"))


# -- Flask-SocketIO ----------------------------------------------------------------------------------------
def test_flask_socketio_handlers_get_request_sid_session_and_app_context(caplog) -> None:
    from flask import Flask, current_app, request, session
    from flask_socketio import SocketIO

    app = Flask("sync-test")
    app.config["SECRET_KEY"] = "test"
    socketio_app = SocketIO(app, async_mode="threading")
    streams = sync.ss(socketio_app)
    seen: dict[str, Any] = {}

    @socketio_app.on("connect")
    def connect() -> None:
        session["user"] = "ada"

    @streams.on("upload")
    def upload(stream: sync.IOStream, meta: dict[str, Any]) -> Any:
        seen.update(sid=request.sid, user=session.get("user"), app=current_app.name)  # type: ignore[attr-defined]
        return {"size": len(stream.read(timeout=30)), "name": meta["name"]}

    with serving(app) as url, sync_client(url) as client:
        client_streams = sync.ss(client)
        client.connect(url, transports=["websocket"])
        stream = sync.create_stream()
        writer = write_in_thread(stream, os.urandom(MiB))
        assert client_streams.call("upload", stream, {"name": "f"}) == {"size": MiB, "name": "f"}
        writer.join()
        assert seen == {"sid": client.get_sid(), "user": "ada", "app": "sync-test"}

        # The test client turns async_handlers off: its stream events are refused, not hung.
        test_client = socketio_app.test_client(app)
        assert test_client.is_connected()
        reply = test_client.emit("$stream", "upload", {"$stream": "0" * 8}, {"name": "g"}, callback=True)
        assert not reply and "async_handlers=True" in caplog.text
        test_client.disconnect()


# -- across the sync/async divide -------------------------------------------------------------------
@pytest.mark.anyio
async def test_async_client_to_sync_server() -> None:
    with sync_server() as (sio, url):
        install_handlers(sync.ss(sio), sio)
        client = socketio.AsyncClient()
        client_streams = sio_stream.ss(client)
        await client.connect(url, transports=["websocket"])
        try:
            data = os.urandom(3 * MiB)
            stream = sio_stream.create_stream()
            async with anyio.create_task_group() as tg:
                tg.start_soon(stream.end, data)
                reply = await client_streams.call("upload", stream, {"name": "x"})
            assert reply["sha"] == sha(data)
            down, digest = await client_streams.call("download", MiB)
            assert sha(await down.read()) == digest
        finally:
            await client.disconnect()


@pytest.mark.anyio
async def test_sync_client_to_async_server(pair) -> None:
    server_streams = pair.server_streams
    tasks: list[Any] = []

    @server_streams.on("upload")
    async def upload(sid: str, stream: Any, meta: Any) -> Any:
        return sha(await stream.read())

    @server_streams.on("download")
    async def download(sid: str, size: int) -> Any:
        stream = sio_stream.create_stream()
        data = os.urandom(size)
        tasks.append(asyncio.ensure_future(stream.end(data)))
        return stream, sha(data)

    def client_side() -> None:
        with sync_client(pair.url) as client:
            client_streams = sync.ss(client)
            client.connect(pair.url, transports=["websocket"])
            data = os.urandom(2 * MiB)
            stream = sync.create_stream()
            writer = write_in_thread(stream, data)
            assert client_streams.call("upload", stream, {}) == sha(data)
            writer.join()
            down, digest = client_streams.call("download", MiB)
            assert sha(down.read(timeout=30)) == digest

    await anyio.to_thread.run_sync(client_side)


@pytest.mark.anyio
async def test_files_with_digests_across_the_divide(pair, tmp_path) -> None:
    """sync send_file -> async receive_file and async send_file -> sync receive_file: the
    digest travels both ways and is checked."""
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(2 * MiB + 1))
    digests: list[Any] = []

    @pair.server_streams.on("store")
    async def store(sid: str, stream: Any) -> Any:
        done = await sio_stream.receive_file(stream, tmp_path / "up.bin")
        digests.append(stream.digest == digest_of(stream, source.read_bytes()))
        return done

    sending: list[asyncio.Task[int]] = []

    @pair.server_streams.on("fetch")
    async def fetch(sid: str) -> Any:
        stream = sio_stream.create_stream()
        sending.append(asyncio.get_running_loop().create_task(sio_stream.send_file(stream, source)))
        return stream

    @pair.server_streams.on("fetched")
    async def fetched(sid: str) -> Any:
        # The client's answer to the end (its digest check) came before this event: the
        # sender is done. (The client must not disconnect earlier: python-socketio drops
        # what is still queued.)
        return await sending[0]

    def client_side() -> None:
        with sync_client(pair.url) as client:
            client_streams = sync.ss(client)
            client.connect(pair.url, transports=["websocket"])
            stream = sync.create_stream()
            result: list[Any] = []
            caller = threading.Thread(target=lambda: result.append(client_streams.call("store", stream)))
            caller.start()
            sync.send_file(stream, source, timeout=30)
            caller.join(60)
            assert result == [source.stat().st_size]
            digests.append(stream.digest == digest_of(stream, source.read_bytes()))
            down = client_streams.call("fetch")
            assert sync.receive_file(down, tmp_path / "down.bin", timeout=30) == source.stat().st_size
            digests.append(down.digest == digest_of(down, source.read_bytes()))
            assert client_streams.call("fetched") == source.stat().st_size

    await anyio.to_thread.run_sync(client_side)
    assert digests == [True, True, True]
    assert (tmp_path / "up.bin").read_bytes() == (tmp_path / "down.bin").read_bytes() == source.read_bytes()
