"""Disk space reserved ahead of a received file's writes (sio_stream/files/_reserve.py): the
file keeps its length, and what the writes did not fill is given back, whether the transfer
completed or stopped half way (a partial file a later transfer resumes)."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

import sio_stream.files._reserve as reserve_module
from sio_stream import StreamError, create_stream, receive_file
from sio_stream.files._reserve import RESERVE_AHEAD, Reserving
from tests.test_files import make_file, settle, upload_to_a_file

pytestmark = pytest.mark.anyio


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def reserves_here(directory: Path) -> bool:
    """Whether this file system reserves space ahead (Linux fallocate with KEEP_SIZE)."""
    probe = directory / "probe.bin"
    with open(probe, "wb") as file:
        reserving = Reserving(file)
        reserving.write(b"x")
        file.flush()
        reserved = allocated(probe) >= RESERVE_AHEAD
    probe.unlink()
    return reserved


def test_space_is_reserved_ahead_and_given_back(tmp_path):
    if not reserves_here(tmp_path):
        pytest.skip("no fallocate(KEEP_SIZE) on this file system")
    path = tmp_path / "file.bin"
    with open(path, "wb") as file:
        reserving = Reserving(file)
        reserving.write(b"a" * 1000)
        file.flush()
        assert os.stat(path).st_size == 1000  # the length is what was written
        assert allocated(path) >= RESERVE_AHEAD
        reserving.trim()
        assert allocated(path) < RESERVE_AHEAD
    assert path.read_bytes() == b"a" * 1000


def test_giving_back_keeps_a_file_cut_back_since(tmp_path):
    """A resumed file that failed its check is cut back to the checked prefix before it is
    closed: giving back the reserved space must not lengthen it again."""
    path = tmp_path / "file.bin"
    with open(path, "wb") as file:
        reserving = Reserving(file)
        reserving.write(b"c" * 5000)
        file.truncate(100)
        reserving.trim()
    assert path.read_bytes() == b"c" * 100


def test_a_refused_reservation_leaves_the_writes_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(reserve_module, "_fallocate", lambda fd, mode, offset, length: -1)
    path = tmp_path / "file.bin"
    with open(path, "wb") as file:
        reserving = Reserving(file)
        for _ in range(3):
            reserving.write(b"b" * 1000)
        reserving.trim()
    assert path.read_bytes() == b"b" * 3000


async def test_a_received_file_holds_no_reserved_space(pair, tmp_path):
    if not reserves_here(tmp_path):
        pytest.skip("no fallocate(KEEP_SIZE) on this file system")
    source = tmp_path / "source.bin"
    data = make_file(source, 1024 * 1024 + 1000)
    target = tmp_path / "stored.bin"
    await upload_to_a_file(pair, source, target, len(data))
    assert target.read_bytes() == data
    # The 4 MiB reserved at the first write were given back: the file holds its own blocks.
    assert allocated(target) < len(data) + 64 * 1024


async def test_a_stopped_partial_file_holds_no_reserved_space(pair, tmp_path):
    if not reserves_here(tmp_path):
        pytest.skip("no fallocate(KEEP_SIZE) on this file system")
    partial = tmp_path / ".stored.bin.part"
    block = os.urandom(256 * 1024)

    @pair.server_streams.on("produce")
    async def produce(sid, stream):
        try:
            while True:
                await stream.write(block)
        except StreamError:
            pass  # the receiver stopped

    stream = create_stream()
    await pair.client_streams.emit("produce", stream)
    with anyio.CancelScope() as scope:

        def progress(done: int, total: int | None) -> None:
            if done >= 2 * len(block):
                scope.cancel()

        with anyio.fail_after(30):
            await receive_file(stream, tmp_path / "stored.bin", partial=partial, progress=progress)
    assert scope.cancelled_caught
    stored = partial.stat().st_size
    assert stored >= 2 * len(block)  # what was taken from the stream is kept
    assert partial.read_bytes() == block * (stored // len(block))
    assert allocated(partial) < stored + 64 * 1024
    await settle(pair)
