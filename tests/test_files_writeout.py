"""A received file's data leaves the page cache behind its writes once it passes a size
(sio_stream/files/_writeout.py): the bytes stay exact, the steps written out are no longer
cached, a smaller file is cached as before, and a file that cannot be written out (not a
regular file) is written as before. The size is lowered here (``write_out_from``) so the
tests move a few steps, not a GiB."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

import sio_stream.files._writeout as writeout_module
from sio_stream import sync
from sio_stream.files._writeout import WRITE_OUT_STEP, WritingOut
from tests.test_files import make_file, upload_to_a_file
from tests.test_sync import sync_pair  # noqa: F401 (a fixture)

BLOCK = 512 * 1024

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(os, "RWF_NOWAIT"),
    reason="sync_file_range and RWF_NOWAIT are Linux's",
)


@pytest.fixture
def write_out_from(monkeypatch):
    """Set the size past which a file is written out (``WRITE_OUT_AFTER``); 0 by default here."""

    def set_size(size: int) -> None:
        monkeypatch.setattr(writeout_module, "WRITE_OUT_AFTER", size)

    set_size(0)
    return set_size


def cached(path: Path, offset: int) -> bool:
    """Whether the page at ``offset`` of ``path`` is in the page cache: a read that must not
    wait for the disk (RWF_NOWAIT) fails with EAGAIN where it is not."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.preadv(fd, [bytearray(4096)], offset, os.RWF_NOWAIT)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


@linux_only
@pytest.mark.parametrize("start", [0, 1024 * 1024 + 7])
def test_steps_written_out_leave_the_cache(tmp_path, start, write_out_from):
    path = tmp_path / "file.bin"
    prefix = os.urandom(start)
    path.write_bytes(prefix)
    blocks = [os.urandom(BLOCK) for _ in range(3 * WRITE_OUT_STEP // BLOCK + 1)]
    with open(path, "ab") as file:
        writing = WritingOut(file, file.write, start)
        for block in blocks:
            writing.write(block)
        # The first step was waited for and dropped once the third began; the last write is
        # still in the cache (dirty or not, it was not dropped).
        assert not cached(path, start + BLOCK)
        assert cached(path, start + len(blocks) * BLOCK - 1)
    assert path.read_bytes() == prefix + b"".join(blocks)


@linux_only
def test_a_file_below_the_size_stays_cached_and_a_larger_one_leaves(tmp_path, write_out_from):
    write_out_from(4 * WRITE_OUT_STEP)
    path = tmp_path / "file.bin"
    block = os.urandom(BLOCK)
    with open(path, "wb") as file:
        writing = WritingOut(file, file.write)
        for _ in range(4 * WRITE_OUT_STEP // BLOCK - 1):
            writing.write(block)
        assert cached(path, 0)  # below the size: nothing written out
        for _ in range(2 * WRITE_OUT_STEP // BLOCK + 1):
            writing.write(block)
        # Past it: everything before the last step was written out, then dropped.
        assert not cached(path, 0)
        assert not cached(path, 3 * WRITE_OUT_STEP)
    assert path.read_bytes() == block * (6 * WRITE_OUT_STEP // BLOCK)


def test_a_file_that_cannot_be_written_out_is_written_as_before(write_out_from):
    # /dev/null is no regular file: sync_file_range refuses it (ESPIPE), which is no write error.
    with open(os.devnull, "wb") as file:
        writing = WritingOut(file, file.write)
        for _ in range(3 * WRITE_OUT_STEP // BLOCK):
            writing.write(bytes(BLOCK))


@linux_only
@pytest.mark.anyio
async def test_a_received_file_is_exact_and_left_the_cache(pair, tmp_path, write_out_from):
    source = tmp_path / "source.bin"
    data = make_file(source, 3 * WRITE_OUT_STEP + 1000)
    target = tmp_path / "stored.bin"
    await upload_to_a_file(pair, source, target, len(data))
    assert not cached(target, 0)
    assert target.read_bytes() == data


@linux_only
def test_a_file_the_sync_api_received_is_exact_and_left_the_cache(sync_pair, tmp_path, write_out_from):  # noqa: F811
    server_streams, client_streams, _, _ = sync_pair
    source = tmp_path / "source.bin"
    data = make_file(source, 3 * WRITE_OUT_STEP + 1000)
    target = tmp_path / "stored.bin"

    @server_streams.on("store")
    def store(sid: str, stream: sync.IOStream) -> int:
        return sync.receive_file(stream, target, timeout=30)

    stream = sync.create_stream()
    result: list[int] = []
    caller = threading.Thread(target=lambda: result.append(client_streams.call("store", stream)))
    caller.start()
    assert sync.send_file(stream, source, timeout=30) == len(data)
    caller.join(60)
    assert result == [len(data)]
    assert not cached(target, 0)
    assert target.read_bytes() == data
