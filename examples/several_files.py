"""Several files in one event: the client sends a list of ``{"name", "stream"}`` in one emit;
the server receives them all concurrently and acknowledges with what it stored.

Run: python examples/several_files.py
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
        sizes = {"a.txt": 1_000, "b.bin": 700_000, "c.bin": 2_500_000}
        digests = {}
        for name, size in sizes.items():
            data = os.urandom(size)
            await anyio.Path(client_dir, name).write_bytes(data)
            digests[name] = hashlib.sha256(data).hexdigest()

        sio = socketio.AsyncServer(async_mode="aiohttp")

        @ss(sio).on("files")
        async def files(sid: str, batch: list) -> dict:
            async def store(item: dict) -> tuple[str, str]:
                digest = hashlib.sha256()
                await receive_file(item["stream"], Path(server_dir, Path(item["name"]).name), hasher=digest)
                return item["name"], digest.hexdigest()

            # Streams are multiplexed over one connection: read them all at once.
            return dict(await asyncio.gather(*(store(item) for item in batch)))

        runner, url = await start_server(sio)
        client = socketio.AsyncClient()
        await client.connect(url, transports=["websocket"])

        batch = [{"name": name, "stream": create_stream()} for name in sizes]
        stored = asyncio.get_running_loop().create_future()
        await ss(client).emit("files", batch, callback=stored.set_result)
        await asyncio.gather(*(send_file(item["stream"], Path(client_dir, item["name"])) for item in batch))
        result = await stored
        for name, digest in sorted(result.items()):
            print(f"{name}: {sizes[name]} bytes, sha256 {'ok' if digest == digests[name] else 'WRONG'}")
        print("several files ok" if result == digests else "several files FAILED")

        await client.disconnect()
        await sio.shutdown()
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
