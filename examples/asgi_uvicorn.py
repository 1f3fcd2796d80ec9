"""Mounting on an ASGI app run by uvicorn: Socket.IO (and its streams) at /socket.io/, any
other path goes to your own ASGI application.

Run: python examples/asgi_uvicorn.py   (needs uvicorn)
"""

import asyncio
import hashlib

import aiohttp
import socketio
import uvicorn

from sio_stream import create_stream, ss

PAYLOAD = bytes(range(256)) * 8192  # 2 MiB


async def hello_app(scope, receive, send) -> None:
    """The rest of the site: a plain ASGI app."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello from the ASGI app\n"})


async def main() -> None:
    sio = socketio.AsyncServer(async_mode="asgi")

    @ss(sio).on("download")
    async def download(sid: str, stream) -> str:
        for i in range(0, len(PAYLOAD), 100_000):
            await stream.write(PAYLOAD[i : i + 100_000])
        await stream.end()
        return hashlib.sha256(PAYLOAD).hexdigest()

    app = socketio.ASGIApp(sio, other_asgi_app=hello_app)
    # No WebSocket compression for browsers (ss() cannot decline it under ASGI: uvicorn answers
    # the handshake); from the command line: uvicorn module:app --ws-per-message-deflate false
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", ws_per_message_deflate=False)
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no "started" event to wait on)
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"

    async with aiohttp.ClientSession() as http, http.get(url + "/") as response:
        print(f"GET / -> {response.status} {(await response.text()).strip()}")

    client = socketio.AsyncClient()
    await client.connect(url, transports=["websocket"])
    stream = create_stream()
    digest = asyncio.get_running_loop().create_future()
    await ss(client).emit("download", stream, callback=digest.set_result)
    data = await stream.read()
    ok = hashlib.sha256(data).hexdigest() == await digest
    print(f"streamed {len(data)} bytes through uvicorn")
    print("asgi ok: sha256 matches" if ok else "asgi FAILED")

    await client.disconnect()
    server.should_exit = True
    await serving


if __name__ == "__main__":
    asyncio.run(main())
