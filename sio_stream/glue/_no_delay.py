"""No Nagle delay on the websockets of a threading, eventlet or gevent server.

A stream's chunk is two websocket messages, a small text one (the ``$stream-write`` event with
a placeholder) and the binary attachment. Neither werkzeug, eventlet's nor gevent's WSGI server
sets ``TCP_NODELAY`` on the connections it accepts (aiohttp does; websocket-client, the sync
client, does too), so when the attachment is shorter than a segment (a stream's first chunk is
paid from its 32 KiB floor, a file's last chunk, any small write), Nagle's algorithm holds it
until the peer acknowledges the text message before it, and the peer delays that
acknowledgement up to 40 ms (Linux's delayed ACK): the classic write-write-read stall. Traced on
an eventlet server, one such stall of 44-48 ms came at the start of every 32 MiB download, while
both processes sat idle: about 40% of the transfer's time.

:func:`configure` gives one engine.io server a copy of its table of async-mode drivers (see
:mod:`sio_stream.glue._drivers`) whose ``websocket`` entry sets ``TCP_NODELAY`` on each
connection's socket before engine.io's handler gets it. Nothing global changes; a socket that
is not TCP (a Unix socket) or a driver that looks otherwise is left alone.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from ._drivers import wrap_driver

#: Modes whose WSGI servers accept connections without ``TCP_NODELAY``.
MODES = frozenset({"threading", "eventlet", "gevent"})
_DONE_ATTRIBUTE = "_sio_stream_no_delay"


def configure(eio: Any) -> bool:
    """Make the websockets of engine.io server ``eio`` send without Nagle's delay, in threading,
    eventlet and gevent modes; return whether they do now (False for every other mode)."""
    mode = getattr(eio, "async_mode", None)
    return mode in MODES and wrap_driver(eio, mode, "websocket", _factory, _DONE_ATTRIBUTE)


def _factory(websocket: Callable[..., Any]) -> Callable[..., Any]:
    """python-engineio's ``websocket(handler, server)`` factory, whose handler gets websockets
    whose socket has ``TCP_NODELAY`` set."""

    def factory(handler: Callable[[Any], Any], server: Any) -> Any:
        def handle(ws: Any) -> Any:
            no_delay(websocket_socket(ws))
            return handler(ws)

        return websocket(handle, server)

    return factory


def websocket_socket(ws: Any) -> Any:
    """The socket under a driver's websocket object: eventlet's ``RFC6455WebSocket.socket``, or
    python-engineio's simple-websocket wrapper's ``ws.sock``; ``None`` when there is neither."""
    sock = getattr(ws, "socket", None)
    if sock is None:
        sock = getattr(getattr(ws, "ws", None), "sock", None)
    return sock


def no_delay(sock: Any) -> bool:
    """Set ``TCP_NODELAY`` on ``sock``; return whether it is set (False for anything else)."""
    setsockopt = getattr(sock, "setsockopt", None)
    if setsockopt is None:
        return False
    try:
        setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # not a TCP socket
        return False
    return True
