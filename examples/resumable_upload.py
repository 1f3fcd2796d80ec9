"""Uploads that survive a dropped connection and a crash: what `sio-stream put` does, with the
library's pieces.

* A dropped connection (Wi-Fi hand-over, proxy restart) needs nothing from the program:
  python-socketio's client reconnects, and sio_stream resumes the session (`resume_timeout`,
  30 s by default); every stream continues where it stopped.
* A crash (the client process dies, the machine reboots) loses the session. The server keeps
  what arrived in a partial file named after a transfer id the client chose; the restarted
  client asks how much arrived, proves it holds the same first bytes (`prefix_digest`) and sends
  only the rest (`send_file(offset=...)`, `receive_file(partial=..., offset=...)`).

Here the "crash" is a first client that stops after half the file and leaves abruptly; a second
client finishes the upload. Run: python examples/resumable_upload.py
"""

import asyncio
import contextlib
import hashlib
import os
import tempfile
import uuid
from pathlib import Path

import anyio
import socketio
from aiohttp import web

from sio_stream import (
    ConnectionAbortedStreamError,
    HandlerError,
    IOStream,
    create_stream,
    prefix_digest,
    receive_file,
    send_file,
    ss,
)

CHUNK = 256 * 1024


async def start_server(sio: socketio.AsyncServer) -> tuple[web.AppRunner, str]:
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def serve_uploads(sio: socketio.AsyncServer, directory: Path) -> None:
    streams = ss(sio)  # resume_timeout=30: a dropped client's transfer waits 30 s for it

    def part_of(transfer: str) -> Path:
        # The transfer id names files on the server: accept only what uuid4().hex produces.
        if len(transfer) != 32 or not all(c in "0123456789abcdef" for c in transfer):
            raise HandlerError("bad transfer id")
        return directory / f".{transfer}.part"

    @streams.on("offset")
    async def offset(sid: str, transfer: str) -> int:
        """How many bytes of this transfer the server holds (0 for a new one)."""
        part = part_of(transfer)
        return part.stat().st_size if part.exists() else 0

    @streams.on("put")
    async def put(sid: str, stream: IOStream, transfer: str, name: str, offset: int, prefix: str) -> int:
        part = part_of(transfer)
        if offset and await prefix_digest(part, offset) != prefix:
            raise HandlerError("the stored part is not the start of this file")
        target = directory / Path(name).name  # never trust a client's path
        try:
            return await receive_file(stream, target, partial=part, offset=offset)
        except ConnectionAbortedStreamError:
            return 0  # the client went for good: the partial file waits for its next attempt


async def upload(url: str, source: Path, transfer: str) -> int:
    """Upload ``source`` as ``transfer``, from wherever an earlier attempt stopped."""
    client = socketio.AsyncClient()
    await client.connect(url, transports=["websocket"])
    try:
        streams = ss(client)
        offset = await streams.call("offset", transfer)
        prefix = await prefix_digest(source, offset)
        stream = create_stream()
        sending = send_file(stream, source, offset=offset)  # only the rest
        stored: int = await streams.call("put", stream, transfer, source.name, offset, prefix, writer=sending)
        return stored
    finally:
        await client.disconnect()


async def crashing_upload(url: str, source: Path, transfer: str) -> None:
    """A first attempt whose process "dies" half way: it sends half the file, then its
    connection goes away for good (here: a deliberate disconnect, so the server does not wait
    for it)."""
    client = socketio.AsyncClient()
    await client.connect(url, transports=["websocket"])
    stream = create_stream()
    answer = ss(client).call("put", stream, transfer, source.name, 0, "", timeout=None)
    call = asyncio.ensure_future(answer)
    data = await anyio.Path(source).read_bytes()
    for start in range(0, len(data) // 2, CHUNK):
        await stream.write(data[start : start + CHUNK])
    await client.disconnect()
    with contextlib.suppress(ConnectionAbortedStreamError):  # the call fails with the connection
        await call


async def main() -> None:
    with tempfile.TemporaryDirectory() as client_dir, tempfile.TemporaryDirectory() as server_dir:
        data = os.urandom(5_000_000)
        source = Path(client_dir, "video.mp4")
        await anyio.Path(source).write_bytes(data)
        sio = socketio.AsyncServer(async_mode="aiohttp")
        serve_uploads(sio, Path(server_dir))
        runner, url = await start_server(sio)

        transfer = uuid.uuid4().hex  # the client keeps it (on disk, in a real program) until done
        await crashing_upload(url, source, transfer)
        part = anyio.Path(server_dir, f".{transfer}.part")
        print(f"after the crash the server holds {(await part.stat()).st_size} bytes")

        stored = await upload(url, source, transfer)  # the restarted client
        print(f"the second attempt sent {stored} bytes")
        same = (
            hashlib.sha256(await anyio.Path(server_dir, "video.mp4").read_bytes()).digest()
            == hashlib.sha256(data).digest()
        )
        print(
            "resumable upload ok: sha256 matches"
            if same and not await part.exists()
            else "resumable upload FAILED"
        )

        await sio.shutdown()
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
