"""The disk side of send_file / receive_file / pipe: read ahead, write behind, bounded, and
nothing left running after a failure or a cancellation."""

from __future__ import annotations

import errno
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

import sio_stream.files._disk as files_module
from sio_stream import StreamBrokenError, StreamError, create_stream, pipe, receive_file
from sio_stream.files._common import DEFAULT_CHUNK_SIZE
from sio_stream.files._disk import PIPELINE_DEPTH, WRITE_BEHIND_LIMIT
from tests.test_files import (
    LARGE,
    UploadReceiver,
    emit_with_ack,
    files_in,
    make_file,
    send_cancelled,
    settle,
)

pytestmark = pytest.mark.anyio

CHUNK = DEFAULT_CHUNK_SIZE


def pipeline_threads(function: str | None = None) -> list[str]:
    """Threads (other than this one) running code of sio_stream/files/_disk.py right now (in
    ``function`` when given)."""
    here = threading.get_ident()
    busy = []
    for ident, frame in sys._current_frames().items():
        if ident == here:
            continue
        f: Any = frame
        while f is not None:
            if f.f_code.co_filename == files_module.__file__ and function in (None, f.f_code.co_name):
                busy.append(str(ident))
                break
            f = f.f_back
    return busy


def open_fds_to(path: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(path)):
            found.append(target)
    return found


class CountingSource:
    """A sync binary source of ``size`` bytes that records how far its reads run ahead of the
    bytes the pipe has handed on (``progress``): the read-ahead, in bytes."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.read_total = 0
        self.handed = 0
        self.max_ahead = 0
        self.block = os.urandom(CHUNK)

    def progress(self, done: int, total: int | None) -> None:
        self.handed = done

    def read(self, n: int) -> bytes:  # in a worker thread
        data = self.block[: min(n, self.left)]
        self.left -= len(data)
        self.read_total += len(data)
        self.max_ahead = max(self.max_ahead, self.read_total - self.handed)
        return data


class SlowSink:
    """A sync binary destination that writes slowly (a slow disk) and records how far the bytes
    taken from the stream (``progress``) run ahead of those written: the write-behind."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.written = 0
        self.taken = 0
        self.max_behind = 0
        self.fail_after = fail_after

    def progress(self, done: int, total: int | None) -> None:
        self.taken = done
        self.max_behind = max(self.max_behind, self.taken - self.written)

    def write(self, data: bytes) -> int:  # in a worker thread
        time.sleep(0.002)  # a slow disk, so the stream side runs ahead of it
        if self.fail_after is not None and self.written >= self.fail_after:
            raise OSError(errno.ENOSPC, "No space left on device (test)")
        self.written += len(data)
        return len(data)


async def test_read_ahead_is_bounded_and_runs_ahead(pair):
    @pair.server_streams.on("slow-sink")
    async def slow_sink(sid, stream):
        n = 0
        async for data in stream:
            n += len(data)
            await anyio.sleep(0.002)  # a slow reader: the file side runs as far ahead as allowed
        return n

    size = 40 * CHUNK
    source = CountingSource(size)
    stream = create_stream()
    ack = await emit_with_ack(pair.client_streams, "slow-sink", stream)
    with anyio.fail_after(60):
        assert await pipe(source, stream, progress=source.progress) == size
        assert await ack == size
    # Ahead of the stream by more than one chunk (it overlaps), never by more than the depth
    # (plus the chunk being handed over): memory stays bounded whatever the file's size.
    assert CHUNK < source.max_ahead <= (PIPELINE_DEPTH + 1) * CHUNK
    assert pipeline_threads() == []


async def test_write_behind_is_bounded_and_runs_behind(pair):
    @pair.server_streams.on("produce")
    async def produce(sid, stream, size):
        block = os.urandom(CHUNK)
        for _ in range(size // CHUNK):
            await stream.write(block)
        await stream.end()

    size = 40 * CHUNK
    sink = SlowSink()
    stream = create_stream()
    await pair.client_streams.emit("produce", stream, size)
    with anyio.fail_after(60):
        assert await pipe(stream, sink, progress=sink.progress) == size
    assert sink.written == size  # everything written before pipe() returned
    # Queued (the limit) plus the batch a worker is writing, plus the chunk being queued.
    assert CHUNK < sink.max_behind <= 2 * WRITE_BEHIND_LIMIT + CHUNK
    assert pipeline_threads() == []


async def test_cancelled_send_file_leaves_no_thread_and_no_open_file(pair, tmp_path):
    source = tmp_path / "big.bin"
    make_file(source, LARGE)
    receiver = UploadReceiver(pair, tmp_path / "inbox.bin")
    await send_cancelled(pair, source, 4 * CHUNK)
    # Nothing still reads the file: the worker finished and the file is closed. (The
    # receiver, in this process too, may still be writing and hashing its last batch.)
    assert pipeline_threads("_read_batch") == []
    assert open_fds_to(source) == []
    await receiver.finished()
    assert pipeline_threads() == []
    assert "transfer cancelled" in str(receiver.errors[0])
    assert files_in(tmp_path) == ["big.bin"]
    await settle(pair)


async def test_cancelled_receive_file_leaves_no_thread_and_no_file(pair, tmp_path, monkeypatch):
    @pair.server_streams.on("download")
    async def download(sid, stream):
        block = os.urandom(CHUNK)
        try:
            while True:
                await stream.write(block)
        except StreamError:
            pass

    # A slow disk, so a write is in flight when the cancellation comes.
    real_open = open

    class SlowFile:
        def __init__(self, *args: Any) -> None:
            self.file = real_open(*args)

        def write(self, data: bytes) -> int:
            time.sleep(0.005)
            return self.file.write(data)

        def close(self) -> None:
            self.file.close()

    monkeypatch.setattr(files_module, "open", SlowFile, raising=False)
    stream = create_stream()
    await pair.client_streams.emit("download", stream)
    target = tmp_path / "out" / "endless.bin"
    target.parent.mkdir()
    with anyio.CancelScope() as scope:

        def progress(done: int, total: int | None) -> None:
            if done >= 12 * CHUNK:
                scope.cancel()

        await receive_file(stream, target, progress=progress)
    assert scope.cancelled_caught
    assert pipeline_threads() == []
    assert open_fds_to(target.parent) == []
    # No file under the final name, and the temporary one is gone too.
    assert files_in(target.parent) == []
    assert stream.error is not None
    await settle(pair)


async def test_a_disk_write_error_propagates_and_fails_the_stream(pair, tmp_path, monkeypatch):
    sender_errors: list[BaseException] = []
    sender_done = anyio.Event()

    @pair.server_streams.on("download")
    async def download(sid, stream):
        try:
            block = os.urandom(CHUNK)
            for _ in range(LARGE // CHUNK):
                await stream.write(block)
            await stream.end()
        except StreamError as exc:
            sender_errors.append(exc)
        finally:
            sender_done.set()

    real_open = open

    class FullDisk:
        """The file system fills up after 1 MiB."""

        def __init__(self, *args: Any) -> None:
            self.file = real_open(*args)
            self.written = 0

        def write(self, data: bytes) -> int:
            if self.written >= 1024 * 1024:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += len(data)
            return self.file.write(data)

        def close(self) -> None:
            self.file.close()

    monkeypatch.setattr(files_module, "open", FullDisk, raising=False)
    stream = create_stream()
    await pair.client_streams.emit("download", stream)
    with anyio.fail_after(30), pytest.raises(OSError) as caught:
        await receive_file(stream, tmp_path / "out.bin")
    assert caught.value.errno == errno.ENOSPC
    with anyio.fail_after(30):
        await sender_done.wait()
    assert isinstance(sender_errors[0], StreamBrokenError)
    assert "No space left on device" in str(sender_errors[0])
    assert files_in(tmp_path) == []
    assert pipeline_threads() == []
    await settle(pair)


async def test_a_disk_read_error_propagates_and_fails_the_stream(pair):
    errors: list[BaseException] = []
    done = anyio.Event()

    @pair.server_streams.on("sink")
    async def sink(sid, stream):
        try:
            await stream.read()
        except StreamError as exc:
            errors.append(exc)
        finally:
            done.set()

    class FailingSource(CountingSource):
        def read(self, n: int) -> bytes:
            if self.read_total >= 3 * CHUNK:
                raise OSError(errno.EIO, "Input/output error")
            return super().read(n)

    stream = create_stream()
    await pair.client_streams.emit("sink", stream)
    with anyio.fail_after(30), pytest.raises(OSError) as caught:
        await pipe(FailingSource(LARGE), stream)
    assert caught.value.errno == errno.EIO
    with anyio.fail_after(30):
        await done.wait()
    assert isinstance(errors[0], StreamBrokenError)
    assert "Input/output error" in str(errors[0])
    assert pipeline_threads() == []
    await settle(pair)


async def test_a_stream_error_propagates_and_stops_the_disk_side(pair):
    @pair.server_streams.on("refuse")
    async def refuse(sid, stream):
        await stream.read(CHUNK)
        stream.destroy(PermissionError("no more, thanks"))

    source = CountingSource(1 << 40)  # endless, for all practical purposes
    stream = create_stream()
    await pair.client_streams.emit("refuse", stream)
    with anyio.fail_after(30), pytest.raises(StreamBrokenError, match="no more, thanks"):
        await pipe(source, stream, progress=source.progress)
    assert pipeline_threads() == []
    # The reads stopped with the stream: at most the read-ahead beyond what was handed on.
    assert source.read_total <= source.handed + (PIPELINE_DEPTH + 1) * CHUNK
    await settle(pair)


async def test_write_error_of_a_sync_destination_propagates(pair):
    @pair.server_streams.on("produce")
    async def produce(sid, stream):
        block = os.urandom(CHUNK)
        try:
            for _ in range(40):
                await stream.write(block)
            await stream.end()
        except StreamError:
            pass

    sink = SlowSink(fail_after=2 * CHUNK)
    stream = create_stream()
    await pair.client_streams.emit("produce", stream)
    with anyio.fail_after(30), pytest.raises(OSError, match="No space left"):
        await pipe(stream, sink, progress=sink.progress)
    assert stream.error is not None
    assert pipeline_threads() == []
    await settle(pair)
