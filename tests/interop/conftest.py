"""Fixtures of the interop tests: Node.js tools, the JavaScript package under test, and
factories for a Python server (sio_stream in the server role), a Python client and a Node
server, each stopped at teardown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import socketio
from _node import JS_PACKAGE_IDS, JS_PACKAGES, NodeServer, NodeTools, ensure_node, start_server
from _roles import ServerRole
from aiohttp import web

import sio_stream
from sio_stream import StreamSocket
from tests.support import start_server as start_python_server


@pytest.fixture
def anyio_backend() -> str:
    # Node processes run as asyncio subprocesses, and python-socketio is asyncio-only.
    return "asyncio"


@pytest.fixture(scope="session")
def node_tools() -> NodeTools:
    """node and npm, with node/node_modules installed (``npm ci``); fails (never skips) without them."""
    return ensure_node()


@pytest.fixture(params=JS_PACKAGES, ids=JS_PACKAGE_IDS)
def js_pkg(request: pytest.FixtureRequest) -> str:
    """The JavaScript stream package the Node side uses."""
    return str(request.param)


@dataclass
class PythonServer:
    """A python-socketio AsyncServer on 127.0.0.1 whose StreamSocket plays node/server.js's role."""

    sio: socketio.AsyncServer
    streams: StreamSocket
    role: ServerRole
    url: str


@pytest.fixture
async def python_server() -> AsyncIterator[Callable[..., Awaitable[PythonServer]]]:
    """``await python_server(read_size=None, **ss_options)`` starts a server (aiohttp, any free port)."""
    started: list[tuple[PythonServer, web.AppRunner]] = []

    async def start(*, read_size: int | None = None, **ss_options: Any) -> PythonServer:
        sio = socketio.AsyncServer(async_mode="aiohttp")
        streams = sio_stream.ss(sio, **ss_options)
        role = ServerRole(sio, streams, read_size=read_size)
        role.install()
        runner, url = await start_python_server(sio)
        server = PythonServer(sio=sio, streams=streams, role=role, url=url)
        started.append((server, runner))
        return server

    try:
        yield start
    finally:
        for server, runner in started:
            await server.role.close()
            await server.sio.shutdown()
            await runner.cleanup()


@pytest.fixture
async def python_client() -> AsyncIterator[
    Callable[..., Awaitable[tuple[socketio.AsyncClient, StreamSocket]]]
]:
    """``await python_client(url, **ss_options)``: a connected AsyncClient (websocket), its StreamSocket."""
    clients: list[socketio.AsyncClient] = []

    async def connect(url: str, **ss_options: Any) -> tuple[socketio.AsyncClient, StreamSocket]:
        sio = socketio.AsyncClient(reconnection=False)
        clients.append(sio)
        streams = sio_stream.ss(sio, **ss_options)  # before connecting, as an application would
        await sio.connect(url, transports=["websocket"], wait_timeout=60)
        return sio, streams

    try:
        yield connect
    finally:
        for sio in clients:
            if sio.connected:
                await sio.disconnect()


@pytest.fixture
async def node_server(node_tools: NodeTools) -> AsyncIterator[Callable[..., Awaitable[NodeServer]]]:
    """``await node_server(pkg, base64=False, trace=False)`` starts node/server.js; it is stopped at
    teardown, which fails if it logged an uncaught exception (tests also check it themselves)."""
    servers: list[NodeServer] = []

    async def start(pkg: str, *, base64: bool = False, trace: bool = False) -> NodeServer:
        server = await start_server(node_tools, pkg, base64=base64, trace=trace)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        await asyncio.gather(*(server.stop() for server in servers))
        for server in servers:
            server.check_no_uncaught()
