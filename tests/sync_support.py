"""Sync servers and clients for the sync API's tests: a socketio.Server (threading mode, simple-websocket)
behind werkzeug's threaded WSGI server on 127.0.0.1, in a thread of the test process."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import socketio
from werkzeug.serving import make_server


@contextmanager
def serving(wsgi_app: Any) -> Iterator[str]:
    """Serve ``wsgi_app`` on a free port; yield its URL."""
    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(30)


@contextmanager
def sync_server(**kwargs: Any) -> Iterator[tuple[socketio.Server, str]]:
    sio = socketio.Server(async_mode="threading", **kwargs)
    with serving(socketio.WSGIApp(sio)) as url:
        yield sio, url


@contextmanager
def sync_client(url: str, **kwargs: Any) -> Iterator[socketio.Client]:
    client = socketio.Client(**kwargs)
    try:
        yield client
    finally:
        if client.connected:
            client.disconnect()


def eventually(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait (with an Event, not a sleep loop of fixed length) until ``predicate`` holds."""
    idle = threading.Event()
    waited = 0.0
    while not predicate():
        if waited >= timeout:
            raise AssertionError("condition not met in time")
        idle.wait(0.01)
        waited += 0.01
