"""Download, server -> client: the client sends an empty stream, the server writes a file into it.

Run: python examples/download.py
"""

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path

import anyio
import socketio
from aiohttp import web

from sio_stream import create_stream, receive_file, send_file, ss


async def start_server(sio: socketio.AsyncServer) -> tuple[web.AppRunner, str]:
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()  # port 0: any free port
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = os.urandom(5_000_000)
        await anyio.Path(tmp, "report.bin").write_bytes(data)

        sio = socketio.AsyncServer(async_mode="aiohttp")

        @ss(sio).on("download")
        async def download(sid: str, stream, name: str) -> int:
            # The handler's return value is the ack: sent once the client has every byte.
            return await send_file(stream, Path(tmp, name))

        runner, url = await start_server(sio)
        client = socketio.AsyncClient()
        await client.connect(url, transports=["websocket"])

        stream = create_stream()
        sent = asyncio.get_running_loop().create_future()
        await ss(client).emit("download", stream, "report.bin", callback=sent.set_result)
        digest = hashlib.sha256()
        # The file appears (renamed from a temporary name) only once complete.
        received = await receive_file(stream, Path(tmp, "downloaded.bin"), hasher=digest)
        print(f"server sent {await sent} bytes, client received {received} bytes")
        same = digest.digest() == hashlib.sha256(data).digest()
        print("download ok: sha256 matches" if same else "download FAILED: sha256 differs")

        await client.disconnect()
        await sio.shutdown()
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
