"""Shared fixtures: a real python-socketio AsyncServer (aiohttp, 127.0.0.1) and AsyncClient."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio
from aiohttp import web

import sio_stream
from sio_stream import StreamSocket


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Pair:
    """A connected server/client pair and their StreamSockets on one namespace."""

    server: socketio.AsyncServer
    client: socketio.AsyncClient
    url: str
    namespace: str = "/"
    connected: list[str] = field(default_factory=list)

    @property
    def server_streams(self) -> StreamSocket:
        return sio_stream.ss(self.server, self.namespace)

    @property
    def client_streams(self) -> StreamSocket:
        return sio_stream.ss(self.client, self.namespace)

    @property
    def sid(self) -> str:
        return self.connected[-1]

    async def new_client(self, **kwargs: Any) -> socketio.AsyncClient:
        client = socketio.AsyncClient(**kwargs)
        await client.connect(self.url, transports=["websocket"], namespaces=[self.namespace])
        return client


async def start_server(server: socketio.AsyncServer, *, host: str = "127.0.0.1") -> tuple[web.AppRunner, str]:
    app = web.Application()
    server.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://{host}:{port}"


async def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait until ``predicate()`` is true, polling the event loop (never a fixed sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.005)


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    server = socketio.AsyncServer(async_mode="aiohttp")
    runner, url = await start_server(server)
    result = Pair(server=server, client=socketio.AsyncClient(), url=url)

    @server.on("connect")
    async def on_connect(sid: str, environ: Any, auth: Any = None) -> None:
        result.connected.append(sid)

    # StreamSockets exist before the client connects, as in a real application.
    result.server_streams  # noqa: B018
    result.client_streams  # noqa: B018
    await result.client.connect(url, transports=["websocket"])
    await wait_for(lambda: bool(result.connected))
    try:
        yield result
    finally:
        if result.client.connected:
            await result.client.disconnect()
        await server.shutdown()
        await runner.cleanup()
        gc.collect()
