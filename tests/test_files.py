"""send_file / receive_file / pipe over a real loopback server and client."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiofiles
import anyio
import pytest

from sio_stream import (
    StreamBrokenError,
    StreamError,
    TransferIncomplete,
    TransferTooLarge,
    create_stream,
    pipe,
    receive_file,
    send_file,
)
from tests.support import wait_for

pytestmark = pytest.mark.anyio

#: Bigger than a reader's window (8 x 256 KiB): a sender of this much is still writing when
#: the receiver fails, so it sees the failure (a smaller transfer may be fully acked first).
LARGE = 6 * 1024 * 1024


def make_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


class UploadReceiver:
    """A server handler for "upload" that stores the stream with receive_file and records
    how that ended (the tests that cancel the sender look at it)."""

    def __init__(self, pair: Any, target: Path) -> None:
        self.errors: list[BaseException] = []
        self.done = anyio.Event()

        @pair.server_streams.on("upload")
        async def upload(sid: str, stream: Any) -> None:
            try:
                await receive_file(stream, target)
            except StreamError as exc:
                self.errors.append(exc)
            finally:
                self.done.set()

    async def finished(self) -> None:
        with anyio.fail_after(30):
            await self.done.wait()


async def send_cancelled(pair: Any, source: Path, cancel_at: int) -> None:
    """send_file ``source`` to the "upload" handler, cancelled once ``cancel_at`` bytes moved."""
    stream = create_stream()
    await pair.client_streams.emit("upload", stream)
    with anyio.CancelScope() as scope:

        def progress(done: int, total: int | None) -> None:
            if done >= cancel_at:
                scope.cancel()

        await send_file(stream, source, progress=progress)
    assert scope.cancelled_caught


async def settle(pair: Any) -> None:
    """One round trip, so every frame sent before it was processed on both sides.

    Tests that abort a transfer end with this: python-socketio forgets a half-received binary
    packet when the connection closes (``_binary_packet = None``) while the tasks handling
    frames that already arrived still run, and the orphaned attachment then fails to parse
    in a background task. Waiting for a round trip first means nothing is left in flight.
    """

    @pair.server.on("settle")
    async def on_settle(sid: str) -> bool:
        return True

    with anyio.fail_after(30):
        assert await pair.client.call("settle", timeout=30)


async def emit_with_ack(streams: Any, event: str, *args: Any) -> asyncio.Future[Any]:
    """Emit ``event`` now (so the stream is sent before anyone reads it); the ack lands in the future."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def done(*ack: Any) -> None:
        if not future.done():
            future.set_result(ack[0] if len(ack) == 1 else ack)

    await streams.emit(event, *args, callback=done)
    return future


async def upload_to_a_file(pair: Any, source: Path, target: Path, size: int, timeout: float = 60) -> None:
    """The client sends ``source`` (``size`` bytes) with ``send_file``; the server's handler
    stores it at ``target`` with ``receive_file``. Checks both ends' counts."""

    @pair.server_streams.on("upload")
    async def upload(sid: str, stream: Any) -> int:
        return await receive_file(stream, target)

    stream = create_stream()
    ack = await emit_with_ack(pair.client_streams, "upload", stream)
    with anyio.fail_after(timeout):
        assert await send_file(stream, source) == size
        assert await ack == size


async def test_download_with_progress(pair, tmp_path):
    source = tmp_path / "source.bin"
    data = make_file(source, 3_000_000 + 17)
    sender_progress: list[tuple[int, int | None]] = []

    @pair.server_streams.on("download")
    async def download(sid, stream):
        return await send_file(stream, source, progress=lambda d, t: sender_progress.append((d, t)))

    stream = create_stream()
    ack = await emit_with_ack(pair.client_streams, "download", stream)
    target = tmp_path / "out" / "copy.bin"
    target.parent.mkdir()
    seen: list[tuple[int, int | None]] = []
    digest = hashlib.sha256()
    with anyio.fail_after(30):
        n = await receive_file(
            stream, target, size=len(data), progress=lambda d, t: seen.append((d, t)), hasher=digest
        )
        assert await ack == len(data)
    assert n == len(data)
    assert target.read_bytes() == data
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    for calls in (seen, sender_progress):
        assert calls[0] == (0, len(data))
        assert calls[-1] == (len(data), len(data))
        assert [d for d, _ in calls] == sorted(d for d, _ in calls)
        assert len(calls) > 5
    assert files_in(target.parent) == ["copy.bin"]


async def test_upload_replaces_existing_file(pair, tmp_path):
    source = tmp_path / "up.bin"
    data = make_file(source, 1_000_000)
    target = tmp_path / "stored.bin"
    target.write_bytes(b"old")

    @pair.server_streams.on("upload")
    async def upload(sid, stream):
        return await receive_file(stream, target)

    stream = create_stream()
    ack = await emit_with_ack(pair.client_streams, "upload", stream)
    with anyio.fail_after(30):
        assert await send_file(stream, source) == len(data)
        assert await ack == len(data)
    assert target.read_bytes() == data


async def test_max_bytes_fails_both_ends_and_leaves_nothing(pair, tmp_path):
    source = tmp_path / "big.bin"
    make_file(source, LARGE)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "big.bin").write_bytes(b"previous version")
    receiver_errors: list[BaseException] = []

    @pair.server_streams.on("upload")
    async def upload(sid, stream):
        try:
            await receive_file(stream, inbox / "big.bin", max_bytes=300_000)
        except StreamError as exc:
            receiver_errors.append(exc)
        return "done"

    stream = create_stream()
    ack = await emit_with_ack(pair.client_streams, "upload", stream)
    with anyio.fail_after(30):
        with pytest.raises(StreamBrokenError, match="limit of 300000 bytes") as caught:
            await send_file(stream, source)
        assert await ack == "done"
    assert caught.value.remote
    assert len(receiver_errors) == 1
    assert isinstance(receiver_errors[0], TransferTooLarge)
    # No partial file; the previous version is untouched.
    assert files_in(inbox) == ["big.bin"]
    assert (inbox / "big.bin").read_bytes() == b"previous version"
    await settle(pair)


async def test_cancelling_the_receiver_aborts_the_sender(pair, tmp_path):
    sender_errors: list[BaseException] = []
    sender_done = anyio.Event()

    async def endless() -> AsyncIterator[bytes]:
        block = os.urandom(64 * 1024)
        while True:
            yield block

    @pair.server_streams.on("download")
    async def download(sid, stream):
        try:
            await pipe(endless(), stream)
        except StreamError as exc:
            sender_errors.append(exc)
        finally:
            sender_done.set()

    stream = create_stream()
    await pair.client_streams.emit("download", stream)
    with anyio.CancelScope() as scope:

        def progress(done: int, total: int | None) -> None:
            if done >= 1_000_000:
                scope.cancel()

        await receive_file(stream, tmp_path / "endless.bin", progress=progress)
    assert scope.cancelled_caught
    with anyio.fail_after(30):
        await sender_done.wait()
    assert isinstance(sender_errors[0], StreamBrokenError)
    assert "transfer cancelled" in str(sender_errors[0])
    assert files_in(tmp_path) == []
    assert stream.error is not None
    await settle(pair)


async def test_cancelling_the_sender_aborts_the_receiver(pair, tmp_path):
    source = tmp_path / "big.bin"
    make_file(source, LARGE)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    receiver = UploadReceiver(pair, inbox / "big.bin")
    await send_cancelled(pair, source, 1_000_000)
    await receiver.finished()
    assert isinstance(receiver.errors[0], StreamBrokenError)
    assert "transfer cancelled" in str(receiver.errors[0])
    assert files_in(inbox) == []
    await settle(pair)


async def test_cancelling_a_task_running_pipe_destroys_the_stream(pair):
    errors: list[BaseException] = []
    arrived = anyio.Event()

    @pair.server_streams.on("sink")
    async def sink(sid, stream):
        arrived.set()
        try:
            await stream.read()
        except StreamError as exc:
            errors.append(exc)

    async def stalled_source() -> AsyncIterator[bytes]:
        yield b"first"
        await anyio.sleep_forever()  # never produces more
        yield b""  # pragma: no cover

    stream = create_stream()
    await pair.client_streams.emit("sink", stream)
    async with anyio.create_task_group() as group:
        group.start_soon(pipe, stalled_source(), stream)
        with anyio.fail_after(30):
            await arrived.wait()
        group.cancel_scope.cancel()
    assert stream.error is not None
    await wait_for(lambda: bool(errors), timeout=30)
    assert isinstance(errors[0], StreamBrokenError)
    assert "transfer cancelled" in str(errors[0])
    await settle(pair)


async def test_size_mismatch(pair, tmp_path):
    @pair.server_streams.on("send")
    async def send(sid, stream, size):
        await stream.write(os.urandom(size))
        await stream.end()

    for sent, announced, error in ((1000, 2000, TransferIncomplete), (3000, 2000, TransferTooLarge)):
        stream = create_stream()
        await pair.client_streams.emit("send", stream, sent)
        with anyio.fail_after(30), pytest.raises(error):
            await receive_file(stream, tmp_path / "x.bin", size=announced)
        assert files_in(tmp_path) == []


async def test_send_file_missing_fails_the_receiver(pair, tmp_path):
    @pair.server_streams.on("download")
    async def download(sid, stream):
        with pytest.raises(FileNotFoundError):
            await send_file(stream, tmp_path / "missing.bin")

    stream = create_stream()
    await pair.client_streams.emit("download", stream)
    with anyio.fail_after(30), pytest.raises(StreamBrokenError, match="No such file"):
        await receive_file(stream, tmp_path / "out.bin")
    assert files_in(tmp_path) == []


async def _async_chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 100_000):
        yield data[i : i + 100_000]
        yield b""  # empty chunks are skipped, not taken for the end


@pytest.mark.parametrize("kind", ["sync file", "aiofiles file", "async iterable", "iostream"])
async def test_pipe_sources(pair, tmp_path, kind):
    data = os.urandom(700_000)
    path = tmp_path / "source.bin"
    path.write_bytes(data)

    @pair.server_streams.on("collect")
    async def collect(sid, stream):
        return hashlib.sha256(await stream.read()).hexdigest()

    @pair.server_streams.on("produce")
    async def produce(sid, stream):
        await stream.write(data)
        await stream.end()

    stream = create_stream()
    ack = await emit_with_ack(pair.client_streams, "collect", stream)
    with anyio.fail_after(30):
        if kind == "sync file":
            with open(path, "rb") as file:  # noqa: ASYNC230 (a sync file is the point)
                n = await pipe(file, stream)
        elif kind == "aiofiles file":
            async with aiofiles.open(path, "rb") as afile:
                n = await pipe(afile, stream)
        elif kind == "async iterable":
            n = await pipe(_async_chunks(data), stream)
        else:  # relay: a stream from the server piped into another stream to the server
            upstream = create_stream()
            await pair.client_streams.emit("produce", upstream)
            n = await pipe(upstream, stream)
        assert n == len(data)
        assert await ack == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("kind", ["sync file", "aiofiles file"])
async def test_pipe_destinations(pair, tmp_path, kind):
    data = os.urandom(500_000)

    @pair.server_streams.on("produce")
    async def produce(sid, stream):
        await stream.write(data)
        await stream.end()

    stream = create_stream()
    await pair.client_streams.emit("produce", stream)
    path = tmp_path / "dest.bin"
    with anyio.fail_after(30):
        if kind == "sync file":
            buffer = io.BytesIO()
            assert await pipe(stream, buffer) == len(data)
            assert buffer.getvalue() == data
        else:
            async with aiofiles.open(path, "wb") as afile:
                assert await pipe(stream, afile) == len(data)
            assert path.read_bytes() == data


async def test_pipe_rejects_unknown_kinds():
    with pytest.raises(TypeError, match="reads from"):
        await pipe(42, io.BytesIO())
    with pytest.raises(TypeError, match="writes to"):
        await pipe(io.BytesIO(b"x"), 42)


async def test_reading_before_the_stream_is_sent(pair):
    """A reader may start before the event carrying the stream is emitted (its credit must
    reach the peer after the event, or the peer drops it and the transfer never starts)."""

    @pair.server_streams.on("download")
    async def download(sid, stream):
        await stream.write(b"hello")
        await stream.end()

    stream = create_stream()
    request = asyncio.ensure_future(pair.client_streams.emit("download", stream))
    with anyio.fail_after(30):
        # read() asks for data at once, before the emit task has run.
        assert await stream.read() == b"hello"
        await request
