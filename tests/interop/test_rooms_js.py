"""A stream sent to a room whose members are Python clients and clients using the npm
socket.io-stream packages (stop-and-wait readers): every member gets the bytes intact."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from typing import Any

import pytest
import socketio

from sio_stream import create_stream, ss
from tests.interop._node import JS_PACKAGES, NODE_DIR, NodeTools
from tests.support import start_server, wait_for

pytestmark = pytest.mark.anyio

DATA = os.urandom(2 * 1024 * 1024 + 5)
TIMEOUT = 60.0


async def test_a_room_of_python_and_javascript_clients(node_tools: NodeTools):
    server = socketio.AsyncServer(async_mode="aiohttp")
    streams = ss(server)

    @server.event
    async def connect(sid: str, environ: Any, auth: Any) -> None:
        await server.enter_room(sid, "room")

    runner, url = await start_server(server)
    procs: list[asyncio.subprocess.Process] = []
    clients: list[socketio.AsyncClient] = []
    try:
        for pkg in JS_PACKAGES:
            proc = await asyncio.create_subprocess_exec(
                node_tools.node,
                str(NODE_DIR / "room_client.js"),
                url,
                "--pkg",
                pkg,
                cwd=NODE_DIR,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            procs.append(proc)
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
            assert json.loads(line)["ready"] is True
        for _ in range(2):
            client = socketio.AsyncClient()

            @ss(client).on("file")
            async def on_file(stream: Any, meta: Any) -> str:
                return hashlib.sha256(await stream.read()).hexdigest()

            await client.connect(url, transports=["websocket"])
            clients.append(client)
        await wait_for(lambda: len(list(server.manager.get_participants("/", "room"))) == 4)

        stream = create_stream()
        reply = asyncio.create_task(streams.call("file", stream, {"name": "x"}, to="room"))
        for i in range(0, len(DATA), 64 * 1024):
            await stream.write(DATA[i : i + 64 * 1024])
        await stream.end()
        acks = await asyncio.wait_for(reply, TIMEOUT)
        digest = hashlib.sha256(DATA).hexdigest()
        assert list(acks.values()) == [digest] * 4
        for proc in procs:
            assert proc.stdout is not None
            report = json.loads(await asyncio.wait_for(proc.stdout.readline(), TIMEOUT))
            assert report == {"size": len(DATA), "sha256": digest}
        await wait_for(lambda: streams.stream_count() == 0)
    finally:
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), TIMEOUT)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for client in clients:
            await client.disconnect()
        await server.shutdown()
        await runner.cleanup()
