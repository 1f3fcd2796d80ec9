"""Resuming with the file helpers: send_file(offset=), receive_file(partial=, offset=),
prefix_digest(); and refusals that leave what is stored untouched."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from sio_stream import ResumeError, StreamError, create_stream, prefix_digest, receive_file, send_file

pytestmark = pytest.mark.anyio

CHUNK = 256 * 1024


async def _transfer(pair: Any, source: Path, target: Path, partial: Path, offset: int, **send: Any) -> Any:
    result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    @pair.server_streams.on("upload")
    async def upload(sid: str, stream: Any, start: int) -> None:
        try:
            result.set_result(await receive_file(stream, target, partial=partial, offset=start))
        except BaseException as exc:
            result.set_result(exc)

    stream = create_stream()
    await pair.client_streams.emit("upload", stream, offset)
    with contextlib.suppress(StreamError):  # the receiver's refusal reaches the sender too
        await send_file(stream, source, offset=offset, **send)
    with anyio.fail_after(30):
        return await result


async def test_a_cut_transfer_continues_from_the_stored_prefix(pair: Any, tmp_path: Path) -> None:
    data = os.urandom(5 * CHUNK + 123)
    source, target, partial = tmp_path / "src", tmp_path / "dst", tmp_path / ".dst.part"
    source.write_bytes(data)
    partial.write_bytes(data[: 2 * CHUNK + 7])  # what an interrupted transfer left
    offset = partial.stat().st_size
    assert await prefix_digest(partial, offset) == await prefix_digest(source, offset)
    assert await _transfer(pair, source, target, partial, offset) == len(data) - offset
    assert target.read_bytes() == data and not partial.exists()


async def test_an_offset_that_does_not_match_the_stored_size_is_refused(pair: Any, tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK)
    source, target, partial = tmp_path / "src", tmp_path / "dst", tmp_path / ".dst.part"
    source.write_bytes(data)
    partial.write_bytes(data[:1000])
    error = await _transfer(pair, source, target, partial, 5000)
    assert isinstance(error, ResumeError) and "5000" in str(error)
    assert partial.read_bytes() == data[:1000] and not target.exists()


async def test_send_file_refuses_an_offset_beyond_the_file(pair: Any, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.write_bytes(b"abc")
    stream = create_stream()
    await pair.client_streams.emit("nobody", stream)
    with pytest.raises(ResumeError, match="beyond"):
        await send_file(stream, source, offset=4)


async def test_a_changed_prefix_is_seen(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"x" * 1000)
    b.write_bytes(b"x" * 999 + b"y")
    assert await prefix_digest(a, 999) == await prefix_digest(b, 999)
    assert await prefix_digest(a, 1000) != await prefix_digest(b, 1000)
    with pytest.raises(ResumeError):
        await prefix_digest(a, 1001)


async def test_an_existing_partial_is_never_overwritten_at_offset_zero(pair: Any, tmp_path: Path) -> None:
    source, target, partial = tmp_path / "src", tmp_path / "dst", tmp_path / ".dst.part"
    source.write_bytes(b"new")
    partial.write_bytes(b"old data")
    error = await _transfer(pair, source, target, partial, 0)
    assert isinstance(error, ResumeError)  # typed, and the stored bytes are untouched
    assert partial.read_bytes() == b"old data"


async def test_a_digest_mismatch_cuts_the_partial_back_to_the_checked_prefix(
    pair: Any, tmp_path: Path
) -> None:
    data = os.urandom(2 * CHUNK)
    source, target, partial = tmp_path / "src", tmp_path / "dst", tmp_path / ".dst.part"
    source.write_bytes(data)
    partial.write_bytes(data[:100])

    stream_result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    @pair.server_streams.on("upload")
    async def upload(sid: str, stream: Any) -> None:
        try:
            await receive_file(stream, target, partial=partial, offset=100)
        except BaseException as exc:
            stream_result.set_result(exc)

    stream = create_stream()
    await pair.client_streams.emit("upload", stream)
    # The writer claims the digest of other bytes than it sends.
    stream._owner.use_digest(stream._core, "sha256", external=True)
    stream._owner.set_digest(stream._core, hashlib.sha256(b"something else").hexdigest())
    await stream.write(data[100:])
    with pytest.raises(StreamError):
        await stream.end()
    with anyio.fail_after(30):
        error = await stream_result
    assert type(error).__name__ == "IntegrityError"
    assert partial.read_bytes() == data[:100] and not target.exists()


async def test_an_empty_partial_file_resumes_at_offset_zero(pair, tmp_path):
    """An attempt that stored nothing leaves an empty partial file: the next one starts at 0."""
    from sio_stream import create_stream, receive_file, send_file

    source = tmp_path / "source.bin"
    source.write_bytes(b"abc" * 100_000)
    partial = tmp_path / ".copy.part"
    partial.write_bytes(b"")

    @pair.server_streams.on("store")
    async def store(sid, stream):
        return await receive_file(stream, tmp_path / "copy.bin", partial=partial, offset=0)

    stream = create_stream()
    reply = asyncio.create_task(pair.client_streams.call("store", stream))
    await send_file(stream, source)
    assert await reply == 300_000
    assert (tmp_path / "copy.bin").read_bytes() == source.read_bytes()


@pytest.mark.parametrize("cut", ["sender fails", "receiver cancelled"])
async def test_a_cut_keeps_every_byte_taken_from_the_stream(pair: Any, tmp_path: Path, cut: str) -> None:
    """What receive_file took from the stream before a cut is in the partial file afterwards,
    queued writes included, so a resume does not fetch it again."""
    data = os.urandom(12 * CHUNK)
    target, partial = tmp_path / "dst", tmp_path / ".dst.part"
    taken = 8 * CHUNK
    enough = asyncio.Event()
    result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def progress(done: int, total: int | None) -> None:
        if done >= taken:
            enough.set()

    @pair.server_streams.on("upload")
    async def upload(sid: str, stream: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        result.set_result(task)
        await receive_file(stream, target, partial=partial, progress=progress)

    stream = create_stream()
    await pair.client_streams.emit("upload", stream)
    writer = asyncio.create_task(stream.write(data[:taken]))
    with anyio.fail_after(30):
        await enough.wait()
        receiving = await result
        if cut == "sender fails":
            stream.destroy("cut")
        else:
            receiving.cancel()
        with contextlib.suppress(BaseException):
            await receiving
        with contextlib.suppress(BaseException):
            await writer
    stored = partial.read_bytes()
    assert len(stored) >= taken and stored == data[: len(stored)]
    assert not target.exists()
