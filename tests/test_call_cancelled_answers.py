"""A ``call()`` to a room that is cancelled after some recipients refused (their handler
failed, a :class:`HandlerError` each) leaves nothing for asyncio to report: with a ``max_lag``
below a chunk every recipient is dropped at once, two answer with the failure, one never
answers, and the caller gives up (``benchmarks/fanout.py``'s server printed "Future exception
was never retrieved ... HandlerError: recipient fell behind" when its loop shut down)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio

from sio_stream import StreamBrokenError, create_stream, ss
from tests.support import start_server, unretrieved_exceptions, wait_for

pytestmark = pytest.mark.anyio


@pytest.fixture
async def server() -> AsyncIterator[tuple[socketio.AsyncServer, str]]:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    ss(sio)

    @sio.event
    async def connect(sid: str, environ: Any, auth: Any) -> None:
        await sio.enter_room(sid, "lobby")

    runner, url = await start_server(sio)
    try:
        yield sio, url
    finally:
        await sio.shutdown()
        await runner.cleanup()


async def test_a_cancelled_room_call_leaves_no_unretrieved_refusal(server: Any) -> None:
    sio, url = server
    streams = ss(sio)
    never = asyncio.Event()  # what the silent recipient waits for, set at the end
    clients: list[socketio.AsyncClient] = []
    try:
        for silent in (False, False, True):
            client = socketio.AsyncClient()
            client_streams = ss(client)

            @client_streams.on("file")
            async def on_file(stream: Any, silent: bool = silent) -> int:
                if silent:
                    await never.wait()
                return len(await stream.read())

            await client.connect(url, transports=["websocket"])
            clients.append(client)
        sids = [client.get_sid() for client in clients]
        # Every hello exchanged: a client that knows the server answers a failed handler with
        # error-reply (a HandlerError here), not with the empty ack a JavaScript peer gets.
        await wait_for(lambda: all(sid in streams._connections for sid in sids), 30)
        await wait_for(lambda: all(streams._connections[sid].core.peer_known for sid in sids), 30)

        with unretrieved_exceptions() as reports:
            stream = create_stream()
            call = asyncio.ensure_future(streams.call("file", stream, to="lobby", max_lag=1000, timeout=None))
            with pytest.raises(StreamBrokenError, match="every recipient left"):
                while True:
                    await stream.write(bytes(64 * 1024))
            answering = [streams._connections[sid] for sid in sids[:2]]
            await wait_for(lambda: all(c.pending_calls and _answered(c) for c in answering), 60)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            del call
            # What still holds the call's futures lets go (python-socketio keeps the silent
            # recipient's ack callback until it answers or leaves): asyncio reports then.
            never.set()
            for client in clients:
                await client.disconnect()
            await wait_for(lambda: not any(streams._connections.get(sid) for sid in sids), 30)
        assert not reports, [report.get("exception") for report in reports]
    finally:
        never.set()
        for client in clients:
            await client.disconnect()


def _answered(connection: Any) -> bool:
    return all(future.done() for future in connection.pending_calls)
