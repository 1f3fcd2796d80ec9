"""A stream sent to a room whose members are Python clients and clients using the npm
socket.io-stream packages (stop-and-wait readers): every member gets the bytes intact."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
from contextlib import ExitStack
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


def test_a_sync_server_sends_to_a_room_of_python_and_javascript_clients(node_tools: NodeTools):
    """The same with the sync API on a threading socketio.Server, and sync Python clients."""
    from sio_stream import sync
    from tests.sync_support import eventually, sync_client, sync_server

    with sync_server() as (server, url), ExitStack() as stack:
        streams = sync.ss(server)
        server.on("connect", lambda sid, environ, auth: server.enter_room(sid, "room"))
        procs = []
        for pkg in JS_PACKAGES:
            proc = subprocess.Popen(
                [node_tools.node, str(NODE_DIR / "room_client.js"), url, "--pkg", pkg],
                cwd=NODE_DIR,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            stack.callback(_stop, proc)
            procs.append(proc)
            assert proc.stdout is not None
            assert json.loads(proc.stdout.readline())["ready"] is True
        for _ in range(2):
            client = stack.enter_context(sync_client(url))
            sync.ss(client).on(
                "file", lambda stream, meta: hashlib.sha256(stream.read(timeout=TIMEOUT)).hexdigest()
            )
            client.connect(url, transports=["websocket"])
        eventually(lambda: len(list(server.manager.get_participants("/", "room"))) == 4)

        stream = sync.create_stream()

        def write() -> None:
            for i in range(0, len(DATA), 64 * 1024):
                stream.write(DATA[i : i + 64 * 1024], timeout=TIMEOUT)
            stream.end(timeout=TIMEOUT)

        acks = streams.call("file", stream, {"name": "x"}, to="room", writer=write, timeout=TIMEOUT)
        digest = hashlib.sha256(DATA).hexdigest()
        assert list(acks.values()) == [digest] * 4
        for proc in procs:
            assert proc.stdout is not None
            assert json.loads(proc.stdout.readline()) == {"size": len(DATA), "sha256": digest}
        eventually(lambda: streams.stream_count() == 0)


def _stop(proc: subprocess.Popen[str]) -> None:
    """Close the client's stdin (it disconnects and exits); kill it (this pid) if it does not."""
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
