"""TCP_NODELAY on the websockets of sync servers (sio_stream.glue._no_delay): the socket a
threading server accepted for a real client's websocket has it; other modes are left alone."""

from __future__ import annotations

import gc
import socket

import socketio

from sio_stream import sync
from sio_stream.glue import _no_delay as no_delay
from tests.sync_support import sync_client, sync_server


def accepted_sockets(port: int) -> list[socket.socket]:
    """The server side of the connections to ``port`` in this process."""
    found = []
    for obj in gc.get_objects():
        if isinstance(obj, socket.socket) and obj.fileno() != -1:
            try:
                if obj.getsockname()[1] == port and obj.getpeername():
                    found.append(obj)
            except OSError:  # listening or not connected
                continue
    return found


def test_a_threading_servers_websocket_sends_without_delay() -> None:
    with sync_server() as (sio, url):
        sync.ss(sio)
        port = int(url.rsplit(":", 1)[1])
        with sync_client(url) as client:
            connected = sio.eio.create_event()
            sio.on("connect", lambda sid, environ: connected.set())
            sio.on("ping", lambda sid: True)
            client.connect(url, transports=["websocket"], wait_timeout=30)
            assert connected.wait(30)
            assert client.call("ping", timeout=30) is True  # the websocket is up and served
            options = [s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in accepted_sockets(port)]
    assert options and all(options), options


def test_only_wsgi_modes_and_tcp_sockets_are_changed() -> None:
    server = socketio.AsyncServer(async_mode="aiohttp")
    drivers = server.eio._async
    assert no_delay.configure(server.eio) is False
    assert server.eio._async is drivers
    left, right = socket.socketpair()  # a Unix socket: no TCP option to set
    with left, right:
        assert no_delay.no_delay(left) is False
    assert no_delay.no_delay(None) is False
