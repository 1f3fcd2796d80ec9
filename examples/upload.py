"""Upload, client -> server: the client sends a stream and writes a file into it; the server
stores it and acknowledges with the size and sha256 it received.

Run: python examples/upload.py
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
    with tempfile.TemporaryDirectory() as client_dir, tempfile.TemporaryDirectory() as server_dir:
        data = os.urandom(3_000_000)
        source = Path(client_dir, "photo.jpg")
        await anyio.Path(source).write_bytes(data)

        sio = socketio.AsyncServer(async_mode="aiohttp")

        @ss(sio).on("upload")
        async def upload(sid: str, stream, meta: dict) -> dict:
            # Never trust a client's file name: keep only its last component.
            target = Path(server_dir, Path(meta["name"]).name)
            digest = hashlib.sha256()
            size = await receive_file(stream, target, max_bytes=10_000_000, hasher=digest)
            return {"size": size, "sha256": digest.hexdigest()}

        runner, url = await start_server(sio)
        client = socketio.AsyncClient()
        await client.connect(url, transports=["websocket"])

        stream = create_stream()
        # The ack arrives once the server stored the file; `writer` sends the bytes meanwhile.
        # If either fails, call() raises one error and stops the other.
        sending = send_file(stream, source)
        result = await ss(client).call("upload", stream, {"name": "photo.jpg"}, writer=sending)
        same = result["sha256"] == hashlib.sha256(data).hexdigest()
        print(f"server stored {result['size']} bytes")
        print("upload ok: sha256 matches" if same else "upload FAILED: sha256 differs")

        await client.disconnect()
        await sio.shutdown()
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
