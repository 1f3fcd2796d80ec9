"""Resumable get/put of the file server: an interrupted transfer continues from what is stored,
and every bad resume gets a clear refusal that leaves what is stored untouched."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from sio_stream import create_stream
from sio_stream.cli._client import connect, download, partial_paths, upload
from sio_stream.cli._common import CliError
from sio_stream.cli._server import PARTIAL_DIR, FileServer

pytestmark = pytest.mark.anyio

SIZE = 3 * 1024 * 1024 + 5


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[FileServer, str]]:
    root = tmp_path / "root"
    root.mkdir()
    (root / "big.bin").write_bytes(os.urandom(SIZE))
    files = FileServer(root)
    async with files.running("127.0.0.1", 0) as url:
        yield files, url


def _interrupted_download(root: Path, local: Path, url: str, keep: int, *, mtime: int | None = None) -> None:
    """What a download cut after ``keep`` bytes leaves: the partial data and its record."""
    data, record = partial_paths(local)
    data.write_bytes((root / "big.bin").read_bytes()[:keep])
    info = (root / "big.bin").stat()
    mtime = info.st_mtime_ns if mtime is None else mtime
    record.write_text(json.dumps({"remote": "big.bin", "url": url, "size": info.st_size, "mtime": mtime}))


async def test_get_resumes_from_the_partial_file(server: Any, tmp_path: Path) -> None:
    files, url = server
    local = tmp_path / "big.bin"
    _interrupted_download(files.root, local, url, 1_000_000)
    async with connect(url, None) as streams:
        transfer = await download(streams, "big.bin", local, show_progress=False, url=url)
    assert transfer.offset == 1_000_000
    assert local.read_bytes() == (files.root / "big.bin").read_bytes()
    assert not any(name.startswith(".") for name in os.listdir(tmp_path))
    # The line printed is the whole file's sha256 (as sha256sum gives), not the resent tail's.
    whole = hashlib.sha256(local.read_bytes()).hexdigest()
    assert transfer.sha256 == whole
    assert f"resumed at 1000000 bytes, sha256 ok ({whole[:16]}..." in transfer.summary("received")


@pytest.mark.parametrize("case", ["prefix", "beyond", "changed"])
async def test_get_refuses_a_bad_resume_and_keeps_the_partial(server: Any, tmp_path: Path, case: str) -> None:
    files, url = server
    local = tmp_path / "big.bin"
    if case == "changed":
        _interrupted_download(files.root, local, url, 1000, mtime=1)
    else:
        _interrupted_download(files.root, local, url, 1000)
    data, _ = partial_paths(local)
    if case == "prefix":
        stored = bytearray(data.read_bytes())
        stored[10] ^= 1
        data.write_bytes(bytes(stored))
    elif case == "beyond":
        data.write_bytes((files.root / "big.bin").read_bytes() + b"more")
    before = data.read_bytes()
    expected = {"prefix": "not a prefix", "beyond": "beyond", "changed": "changed"}[case]
    async with connect(url, None) as streams:
        with pytest.raises(CliError, match=expected) as info:
            await download(streams, "big.bin", local, show_progress=False, url=url)
    assert "--restart" in str(info.value)
    assert data.read_bytes() == before and not local.exists()
    async with connect(url, None) as streams:  # --restart starts over
        await download(streams, "big.bin", local, show_progress=False, url=url, restart=True)
    assert local.read_bytes() == (files.root / "big.bin").read_bytes()


async def _start_upload(
    streams: Any, source: Path, remote: str, send: int, transfer: str | None = None
) -> Any:
    """Begin an upload and write ``send`` bytes without ending it; return (stream, reply future, status)."""
    info = source.stat()  # noqa: ASYNC240 (test set-up)
    meta = {"path": remote, "size": info.st_size, "mtime": info.st_mtime_ns}
    status = await streams.call("put-status", meta, timeout=30)
    stream = create_stream()
    reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    meta.update(transfer=transfer or status["transfer"], offset=status["offset"])
    await streams.emit("put", stream, meta, callback=reply.set_result)
    await stream.write(source.read_bytes()[:send])  # noqa: ASYNC240 (test set-up)
    return stream, reply, status


async def test_put_resumes_after_the_client_went_away(server: Any, tmp_path: Path) -> None:
    files, url = server
    source = tmp_path / "up.bin"
    source.write_bytes(os.urandom(SIZE))
    async with connect(url, None) as streams:
        await _start_upload(streams, source, "up.bin", 1_500_000)
        # Wait until the server stored some of it, then drop the connection mid-transfer.
        partials = files.root / PARTIAL_DIR
        with anyio.fail_after(30):
            while not any(
                name.endswith(".part") and os.path.getsize(partials / name)  # noqa: ASYNC240
                for name in os.listdir(partials)
            ):
                await anyio.wait_all_tasks_blocked()
    with anyio.fail_after(30):
        while files._holders:
            await anyio.wait_all_tasks_blocked()
    async with connect(url, None) as streams:
        transfer = await upload(streams, source, "up.bin", show_progress=False)
    assert 0 < transfer.offset < SIZE
    assert (files.root / "up.bin").read_bytes() == source.read_bytes()
    assert transfer.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert os.listdir(partials) == []


async def test_a_second_client_is_refused_and_a_stale_one_taken_over(server: Any, tmp_path: Path) -> None:
    files, url = server
    source = tmp_path / "up.bin"
    source.write_bytes(os.urandom(SIZE))
    async with connect(url, None) as first, connect(url, None) as second:
        _, first_reply, _ = await _start_upload(first, source, "up.bin", 100_000)
        with anyio.fail_after(30):
            while not files._holders:
                await anyio.wait_all_tasks_blocked()
        with pytest.raises(CliError, match="another connection"):
            await upload(second, source, "up.bin", show_progress=False)
        files.stale_after = 0  # the first one now counts as a half-open leftover
        transfer = await upload(second, source, "up.bin", show_progress=False)
        assert transfer.size == SIZE
        with anyio.fail_after(30):
            assert "error" in await first_reply
    assert (files.root / "up.bin").read_bytes() == source.read_bytes()


@pytest.mark.parametrize("case", ["unknown", "expired", "other-token"])
async def test_put_refuses_a_transfer_id_it_cannot_continue(tmp_path: Path, case: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    source = tmp_path / "up.bin"
    source.write_bytes(os.urandom(10_000))
    first = FileServer(root, token="a")
    async with first.running("127.0.0.1", 0) as url, connect(url, "a") as streams:
        info = source.stat()
        status = await streams.call(
            "put-status", {"path": "up.bin", "size": info.st_size, "mtime": info.st_mtime_ns}, timeout=30
        )
    transfer = "0" * 32 if case == "unknown" else status["transfer"]
    token = "b" if case == "other-token" else "a"
    second = FileServer(root, token=token, expire=-1 if case == "expired" else 3600)
    async with second.running("127.0.0.1", 0) as url, connect(url, token) as streams:
        meta = {
            "path": "up.bin",
            "size": info.st_size,
            "mtime": info.st_mtime_ns,
            "transfer": transfer,
            "offset": 0,
        }
        stream = create_stream()
        reply = await streams.call("put", stream, meta, timeout=30)
    assert reply["code"] == "unknown-transfer" and "unknown or expired transfer" in reply["error"]
    assert not (root / "up.bin").exists()
    if case == "expired":
        assert second.expire_partials() == 1
        assert list((root / PARTIAL_DIR).iterdir()) == []


async def test_put_refuses_an_offset_beyond_what_is_stored(server: Any, tmp_path: Path) -> None:
    files, url = server
    source = tmp_path / "up.bin"
    source.write_bytes(os.urandom(10_000))
    info = source.stat()
    async with connect(url, None) as streams:
        meta = {"path": "up.bin", "size": info.st_size, "mtime": info.st_mtime_ns}
        status = await streams.call("put-status", meta, timeout=30)
        meta.update(transfer=status["transfer"], offset=5000)
        reply = await streams.call("put", create_stream(), meta, timeout=30)
    assert reply["code"] == "offset-beyond-size"
    assert not (files.root / "up.bin").exists()


async def test_a_token_cannot_pile_up_unfinished_uploads(server: Any, monkeypatch: Any) -> None:
    from sio_stream.cli import _server

    monkeypatch.setattr(_server, "MAX_UNFINISHED_UPLOADS", 2)
    files, url = server
    async with connect(url, None) as streams:
        replies = [
            await streams.call("put-status", {"path": f"f{i}.bin", "size": 10, "mtime": 1}, timeout=30)
            for i in range(3)
        ]
        # The same path again finds its own record: no new one is needed.
        again = await streams.call("put-status", {"path": "f0.bin", "size": 10, "mtime": 1}, timeout=30)
    assert [r.get("offset") for r in replies[:2]] == [0, 0]
    assert replies[2]["code"] == "too-many-unfinished"
    assert again["transfer"] == replies[0]["transfer"]
    assert len(list((files.root / ".sio-stream-partial").glob("*.json"))) == 2


async def test_ctrl_c_mid_get_then_get_again_continues(tmp_path: Path) -> None:
    """``sio-stream get`` in its own process, interrupted three times (SIGINT, as Ctrl-C): each
    time it says "interrupted" (exit 130) with no traceback, and keeps what it received; the
    next run continues from there and the file comes out whole."""
    import signal
    import sys

    root = tmp_path / "root"
    root.mkdir()
    data = os.urandom(4 * 1024 * 1024) * 32  # 128 MiB: a cut always comes before the end
    (root / "big.bin").write_bytes(data)
    local = tmp_path / "big.bin"
    partial, _ = partial_paths(local)
    command = [sys.executable, "-m", "sio_stream", "get", "", "big.bin", str(local), "--no-progress"]
    async with FileServer(root).running("127.0.0.1", 0) as url:
        command[4] = url
        stored = 0
        for cut in (4, 12, 20):
            process = await anyio.open_process(command)
            with anyio.fail_after(60):
                while not (partial.exists() and partial.stat().st_size >= cut * 1024 * 1024):
                    assert process.returncode is None, "the transfer ended before the cut"
                    await anyio.sleep(0.005)  # watching another process's file grow
                process.send_signal(signal.SIGINT)
                await process.wait()
            assert process.stderr is not None
            err = b"".join([chunk async for chunk in process.stderr]).decode()
            await process.aclose()
            assert process.returncode == 130, err
            assert "interrupted" in err and "Traceback" not in err, err
            assert partial.stat().st_size > stored
            stored = partial.stat().st_size
        finished = await anyio.run_process(command, check=False)
    assert finished.returncode == 0, finished.stderr.decode()
    assert f"resumed at {stored} bytes" in finished.stdout.decode()
    # What `sha256sum big.bin` prints, not the sha256 of the part sent after the last cut.
    assert f"sha256 ok ({hashlib.sha256(data).hexdigest()[:16]}..." in finished.stdout.decode()
    assert local.read_bytes() == data and not partial.exists()
