"""Issue 24: a server wrapped by ``ss()`` answers a browser's ``permessage-deflate`` offer
without it, on the servers set up as our guides teach; what a server answers is read from the
websocket handshake itself (``tests/handshake.py``, offering what Chromium offers).

Each setup is also checked with ``websocket_compression=True``, the server's own choice: that
is what every one of them answered before ``ss()`` declined the offer, and it shows the offer
is one the server would accept (the test could fail)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import socketio

from sio_stream import InvalidOptionError, create_stream, ss, sync
from tests.handshake import extensions_answered
from tests.support import start_server, wait_for
from tests.sync_support import sync_peer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def readme_server(websocket_compression: bool = False, ss_first: bool = True) -> AsyncIterator[Any]:
    """An aiohttp server as the README sets one up: ``sio.attach(app)``, ``ss(sio)`` (before or
    after the attach); yields its URL."""
    sio = socketio.AsyncServer(async_mode="aiohttp")
    if ss_first:
        ss(sio, websocket_compression=websocket_compression)
    runner, url = await start_server(sio)
    if not ss_first:
        ss(sio, websocket_compression=websocket_compression)
    try:
        yield sio, url
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("ss_first", [True, False], ids=["ss-then-attach", "attach-then-ss"])
async def test_aiohttp_as_the_readme_teaches_declines_deflate(ss_first: bool) -> None:
    async with readme_server(ss_first=ss_first) as (_sio, url):
        assert await extensions_answered(url) == ""


async def test_aiohttp_declines_deflate_on_an_upgrade_from_polling() -> None:
    # socket.io-client's default: long-polling first, then a websocket for the same session.
    async with readme_server() as (_sio, url), aiohttp.ClientSession() as http:
        async with http.get(url + "/socket.io/?EIO=4&transport=polling") as response:
            opened = json.loads((await response.text())[1:])  # "0{...}": engine.io's open packet
        path = f"/socket.io/?EIO=4&transport=websocket&sid={opened['sid']}"
        assert await extensions_answered(url, path) == ""


async def test_aiohttp_keeps_deflate_when_asked() -> None:
    async with readme_server(websocket_compression=True) as (_sio, url):
        assert (await extensions_answered(url)).startswith("permessage-deflate")


async def test_other_servers_in_the_process_are_untouched() -> None:
    # Only the wrapped server changes: python-engineio's driver table is shared per async mode.
    plain = socketio.AsyncServer(async_mode="aiohttp")
    runner, plain_url = await start_server(plain)
    try:
        async with readme_server() as (_sio, url):
            assert await extensions_answered(url) == ""
            assert (await extensions_answered(plain_url)).startswith("permessage-deflate")
    finally:
        await runner.cleanup()


async def test_streams_flow_and_the_application_still_sees_the_offer() -> None:
    # The websocket works without the extension, and the environ the application gets
    # (sio.get_environ) still has the header the client sent.
    async with readme_server() as (sio, url):
        seen: dict[str, Any] = {}

        @ss(sio).on("sum")
        async def total(sid: str, stream: Any) -> int:
            seen["offer"] = sio.get_environ(sid).get("HTTP_SEC_WEBSOCKET_EXTENSIONS")
            return len(await stream.read())

        client = socketio.AsyncClient()
        # The Python client offers no compression: offer it as a browser does.
        await client.connect(
            url, transports=["websocket"], headers={"Sec-WebSocket-Extensions": "permessage-deflate"}
        )
        try:
            stream = create_stream()
            reply = asyncio.create_task(ss(client).call("sum", stream))
            await stream.end(b"x" * 700_000)
            assert await reply == 700_000
            assert seen["offer"] == "permessage-deflate"
        finally:
            await client.disconnect()


async def test_one_choice_per_server() -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    ss(sio)
    ss(sio, "/other")  # the same choice: fine
    with pytest.raises(InvalidOptionError, match="websocket_compression"):
        ss(sio, "/third", websocket_compression=True)
    with pytest.raises(InvalidOptionError, match="websocket_compression"):
        ss(sio, websocket_compression=True)
    assert ss(sio, "/third") is ss(sio, "/third")  # the refused call left nothing behind


def test_one_choice_per_sync_server() -> None:
    sio = socketio.Server(async_mode="threading")
    sync.ss(sio, websocket_compression=True)
    with pytest.raises(InvalidOptionError, match="websocket_compression"):
        sync.ss(sio, "/other")
    assert sync.ss(sio, "/other", websocket_compression=True) is not None


@asynccontextmanager
async def uvicorn_server(**options: Any) -> AsyncIterator[str]:
    import anyio
    import uvicorn

    sio = socketio.AsyncServer(async_mode="asgi")
    ss(sio)
    config = uvicorn.Config(
        socketio.ASGIApp(sio), host="127.0.0.1", port=0, lifespan="off", log_level="warning", **options
    )
    host = uvicorn.Server(config)
    async with anyio.create_task_group() as group:
        group.start_soon(host.serve)
        await wait_for(lambda: host.started, timeout=30)
        try:
            yield f"http://127.0.0.1:{host.servers[0].sockets[0].getsockname()[1]}"
        finally:
            host.should_exit = True


async def test_uvicorn_as_the_asgi_guide_teaches_declines_deflate() -> None:
    async with uvicorn_server(ws_per_message_deflate=False) as url:
        assert await extensions_answered(url) == ""


async def test_uvicorn_defaults_deflate_whatever_ss_does() -> None:
    # Why the guide passes ws_per_message_deflate=False: uvicorn negotiates the extension itself,
    # and an ASGI application has no say (sio_stream.glue._compression's docstring).
    async with uvicorn_server() as url:
        assert (await extensions_answered(url)).startswith("permessage-deflate")


@pytest.mark.parametrize(
    ("mode", "host"),
    [("threading", "flask"), ("threading", "socketio"), ("eventlet", "flask"), ("gevent", "flask")],
)
@pytest.mark.parametrize("websocket_compression", [False, True], ids=["default", "kept"])
async def test_sync_servers_decline_deflate(mode: str, host: str, websocket_compression: bool) -> None:
    # Every one of these negotiates permessage-deflate on its own (the "kept" runs): simple-websocket
    # (threading, gevent) always offers it to wsproto, eventlet's WebSocketWSGI accepts it. A gevent
    # server keeps it on purpose (sio_stream.glue._compression.FIXABLE_MODES says why).
    flags = ["--websocket-compression"] if websocket_compression else []
    with sync_peer("--mode", mode, "--host", host, *flags) as peer:
        answer = await extensions_answered(peer.url)
    if websocket_compression or mode == "gevent":
        assert answer.startswith("permessage-deflate")
    else:
        assert answer == ""


def test_wrapped_websocket_driver_is_per_server() -> None:
    # The driver table of an unwrapped server is python-engineio's own, shared one.
    wrapped, plain = socketio.Server(async_mode="threading"), socketio.Server(async_mode="threading")
    sync.ss(wrapped)
    assert wrapped.eio._async["websocket"] is not plain.eio._async["websocket"]
    assert plain.eio._async is socketio.Server(async_mode="threading").eio._async


async def test_the_cli_file_server_declines_deflate(tmp_path: Any) -> None:
    """``sio-stream serve`` routes engine.io itself (``attach_socketio``); ``ss()`` of its server
    declines the browser's offer all the same (it used to strip the header a second time)."""
    from sio_stream.cli._server import FileServer

    async with FileServer(tmp_path).running("127.0.0.1", 0) as url:
        assert await extensions_answered(url) == ""
