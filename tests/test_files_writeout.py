"""A received file's data leaves the page cache behind its writes (sio_stream/files/_writeout.py):
the bytes stay exact, the steps written out are no longer cached, and a file that cannot be
written out (not a regular file) is written as before."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import anyio
import pytest

from sio_stream import create_stream, receive_file, send_file, sync
from sio_stream.files._writeout import WRITE_OUT_STEP, WritingOut
from tests.test_files import emit_with_ack, make_file
from tests.test_sync import sync_pair  # noqa: F401 (a fixture)

BLOCK = 512 * 1024

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(os, "RWF_NOWAIT"),
    reason="sync_file_range and RWF_NOWAIT are Linux's",
)


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
def test_steps_written_out_leave_the_cache(tmp_path, start):
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


def test_a_file_that_cannot_be_written_out_is_written_as_before():
    # /dev/null is no regular file: sync_file_range refuses it (ESPIPE), which is no write error.
    with open(os.devnull, "wb") as file:
        writing = WritingOut(file, file.write)
        for _ in range(3 * WRITE_OUT_STEP // BLOCK):
            writing.write(bytes(BLOCK))


@linux_only
@pytest.mark.anyio
async def test_a_received_file_is_exact_and_left_the_cache(pair, tmp_path):
    source = tmp_path / "source.bin"
    data = make_file(source, 3 * WRITE_OUT_STEP + 1000)
    target = tmp_path / "stored.bin"

    @pair.server_streams.on("upload")
    async def upload(sid, stream):
        return await receive_file(stream, target)

    stream = create_stream()
    ack = await emit_with_ack(pair.client_streams, "upload", stream)
    with anyio.fail_after(60):
        assert await send_file(stream, source) == len(data)
        assert await ack == len(data)
    assert not cached(target, 0)
    assert target.read_bytes() == data


@linux_only
def test_a_file_the_sync_api_received_is_exact_and_left_the_cache(sync_pair, tmp_path):  # noqa: F811
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
