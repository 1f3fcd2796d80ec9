"""``sio-stream demo``: a generated file, served and downloaded over a websocket on
127.0.0.1, timed and verified."""

from __future__ import annotations

import argparse
import hashlib
import random
import re
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiofiles
import aiofiles.os
import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

from ._client import connect, download
from ._common import REQUEST_TIMEOUT, CliError, sha256_file
from ._progress import format_rate, format_size
from ._server import FileServer


async def _generate(path: Path, size: int) -> str:
    """Write ``size`` pseudo-random bytes (incompressible, fast to make); return their sha256."""
    rng = random.Random(0x5105)
    hasher = hashlib.sha256()
    block = 4 * 1024 * 1024
    async with aiofiles.open(path, "wb") as file:
        left = size
        while left:
            data = rng.randbytes(min(block, left))
            hasher.update(data)
            await file.write(data)
            left -= len(data)
    return hasher.hexdigest()


@asynccontextmanager
async def _child_server(directory: Path) -> AsyncIterator[str]:
    """``sio-stream serve DIR --port 0`` in a child process; yield the URL it prints."""
    command = [sys.executable, "-m", "sio_stream", "serve", str(directory), "--port", "0", "--quiet"]
    async with await anyio.open_process(command, stdout=subprocess.PIPE, stderr=None) as process:
        try:
            assert process.stdout is not None
            lines = BufferedByteReceiveStream(process.stdout)
            try:
                with anyio.fail_after(REQUEST_TIMEOUT):
                    line = (await lines.receive_until(b"\n", 4096)).decode()
            except (anyio.EndOfStream, anyio.IncompleteRead, TimeoutError):
                raise CliError("demo: the server process did not start (see its error above)") from None
            match = re.search(r"http://\S+?(?=[;\s]|$)", line)
            if match is None:
                raise CliError(f"demo: unexpected output from the server process: {line!r}")
            yield match.group(0)
        finally:
            with anyio.CancelScope(shield=True):
                if process.returncode is None:
                    process.terminate()
                await process.wait()


@asynccontextmanager
async def _demo_server(directory: Path, file: Path, digest: str, *, in_process: bool) -> AsyncIterator[str]:
    if in_process:
        server = FileServer(directory)
        async with server.running("127.0.0.1", 0) as url:
            print(f"demo: server at {url} in this process", file=sys.stderr, flush=True)
            yield url
    else:
        async with _child_server(directory) as url:
            print(f"demo: server at {url} in a child process", file=sys.stderr, flush=True)
            yield url


async def cmd_demo(args: argparse.Namespace) -> None:
    size: int = args.size
    with tempfile.TemporaryDirectory(prefix="sio-stream-demo-") as tmp:
        served, received = Path(tmp, "served"), Path(tmp, "received")
        await anyio.Path(served).mkdir()
        await anyio.Path(received).mkdir()
        name = "demo.bin"
        print(f"demo: generating {format_size(size)} of random data", file=sys.stderr, flush=True)
        digest = await _generate(served / name, size)
        demo_server = _demo_server(served, served / name, digest, in_process=args.in_process)
        async with demo_server as url, connect(url, None) as streams:
            transfer = await download(streams, name, received / name, show_progress=args.progress)
        # Check the file as stored, not only the bytes as they went by.
        if await sha256_file(received / name) != digest:
            raise CliError("demo: the received file's sha256 does not match")
        where = "in one process" if args.in_process else "between two processes"
        print(
            f"demo: {format_size(size)} ({size} bytes) server -> client over a websocket on 127.0.0.1 "
            f"({where}) in {transfer.seconds:.2f} s: {format_rate(size, transfer.seconds)}, sha256 verified"
        )
        # Free the disk space without blocking the loop on a large unlink.
        await aiofiles.os.remove(received / name)
        await aiofiles.os.remove(served / name)
