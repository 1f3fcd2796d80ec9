"""Whole websocket frames from a gevent server: simple-websocket's sends made ``sendall``.

simple-websocket 1.1.0 (python-engineio's websocket driver in gevent mode, unless
gevent-websocket is installed) writes each frame with one ``socket.send()`` and ignores the
count it returns. gevent's ``send`` writes only what fits in the socket buffer once it is full,
so the rest of the frame is lost and the peer drops the connection: a sync client downloading
64 MiB from a gevent server failed with "Connection aborted" in 2 runs of 3 (a stream keeps the
buffer full; hand-rolled acked emits rarely do). Its threading mode uses blocking sockets, whose
``send`` writes everything, and eventlet's driver is eventlet's own.

:func:`configure` gives one engine.io server in gevent mode a copy of its table of async-mode
drivers (``eio._async``, shared by all servers of the mode) whose ``websocket`` entry makes the
simple-websocket of each connection write through :class:`WholeFrames`. The hook is the thread
class simple-websocket is given (it starts its receive thread with ``target=ws._thread`` right
after the handshake): nothing global changes, and a python-engineio or simple-websocket that
looks otherwise is left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._drivers import wrap_driver

#: On the engine.io server once its websockets write whole frames.
_DONE_ATTRIBUTE = "_sio_stream_whole_frames"


def configure(eio: Any) -> bool:
    """Make the websockets of engine.io server ``eio`` write whole frames, in gevent mode with
    simple-websocket; return whether they do now (False for every other mode or driver)."""
    return wrap_driver(eio, "gevent", "websocket", _factory, _DONE_ATTRIBUTE)


def _factory(websocket: Callable[..., Any]) -> Callable[..., Any]:
    """python-engineio's ``websocket(handler, server)`` factory, whose simple-websocket gets a
    thread class that makes its socket write whole frames first."""

    def factory(handler: Any, server: Any) -> Any:
        driver = websocket(handler, server)
        options = getattr(driver, "server_args", None)  # SimpleWebSocketWSGI's Server(**options)
        if isinstance(options, dict) and options.get("thread_class") is not None:
            options["thread_class"] = _whole_frames_thread(options["thread_class"])
        return driver

    return factory


def _whole_frames_thread(thread_class: Callable[..., Any]) -> Callable[..., Any]:
    def start(*args: Any, target: Any = None, **kwargs: Any) -> Any:
        ws = getattr(target, "__self__", None)  # simple_websocket.Base, after its handshake
        sock = getattr(ws, "sock", None)
        if sock is not None and not isinstance(sock, WholeFrames):
            ws.sock = WholeFrames(sock)  # type: ignore[union-attr]
        return thread_class(*args, target=target, **kwargs)

    return start


class WholeFrames:
    """A socket whose ``send`` writes all of ``data`` (``sendall``) and returns its length."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def send(self, data: bytes, *flags: int) -> int:
        self._sock.sendall(data, *flags)
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)
