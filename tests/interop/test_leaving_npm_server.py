"""A Python client's deliberate ``disconnect()`` against the JavaScript server (node/server.js,
socket.io-stream), which sends no hello: the disconnect must not wait for one.

Since a client's disconnect waits for the server's hello (to close a resumable session), a
client that disconnected with a stream open waited LEAVING_TIMEOUT (10 s) for a hello that an
npm server never sends. The server's answer on a stream of ours (a ``$stream-read``) before
any hello says it sends none: a sio_stream server answers our hello before anything we sent
after it. The bound is raised here so that the test fails by its own timeout, not by a clock.
"""

from __future__ import annotations

import asyncio

import pytest
from _node import TIMEOUT, wait_until

import sio_stream.aio._socket as aio_socket
from sio_stream import create_stream

pytestmark = pytest.mark.anyio


async def test_disconnect_with_a_stream_open_does_not_wait_for_a_hello(
    node_server, python_client, js_pkg, monkeypatch
):
    monkeypatch.setattr(aio_socket, "LEAVING_TIMEOUT", 3600.0)
    node = await node_server(js_pkg)
    sio, streams = await python_client(node.url)
    up = create_stream()
    call = asyncio.ensure_future(streams.call("sha", up, timeout=TIMEOUT))
    await up.write(b"x" * 1000)  # and never ended: the stream stays open
    connection = streams._connections[None]
    # The server's handler reads: its first $stream-read reached us (before any hello).
    await wait_until(lambda: getattr(connection.core.streams.get(up.id), "peer_seen", False))
    assert not connection.core.peer_known

    await asyncio.wait_for(sio.disconnect(), TIMEOUT)

    assert not sio.connected
    call.cancel()
    await asyncio.gather(call, return_exceptions=True)
    await node.stop()
    node.check_no_uncaught()
