"""Shared fixtures: a real python-socketio AsyncServer (aiohttp, 127.0.0.1) and AsyncClient."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio

import sio_stream
from sio_stream import StreamSocket
from tests.redis_support import redis_server
from tests.support import start_server, wait_for


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A redis-server of the module's own (Debian's; .ci/run installs it), for the tests of
    several nodes. tests/test_sync_cluster.py keeps one for the whole session instead."""
    with redis_server() as url:
        yield url


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


@pytest.fixture
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    # Indirect parametrization passes ss() options for both ends (e.g. {"resume_timeout": 0}).
    options: dict[str, Any] = getattr(request, "param", None) or {}
    server = socketio.AsyncServer(async_mode="aiohttp")
    runner, url = await start_server(server)
    result = Pair(server=server, client=socketio.AsyncClient(), url=url)

    @server.on("connect")
    async def on_connect(sid: str, environ: Any, auth: Any = None) -> None:
        result.connected.append(sid)

    # StreamSockets exist before the client connects, as in a real application.
    sio_stream.ss(server, **options)
    sio_stream.ss(result.client, **options)
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
