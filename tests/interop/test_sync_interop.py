"""The sync API against the real JavaScript packages: node/client.js against a Flask-SocketIO
server (threading mode, tests/sync_peer.py in a subprocess) where sio_stream.sync plays
node/server.js's role, and a sync python-socketio client against node/server.js."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest
import socketio
from _node import run_client

from sio_stream import sync
from tests.sync_support import eventually, sync_peer

pytestmark = pytest.mark.anyio
MiB = 1024 * 1024
TIMEOUT = 60


@pytest.mark.parametrize("scenario", ["file", "big-up", "big-down", "object", "binary"])
async def test_js_client_against_flask_socketio(node_tools, js_pkg, scenario):
    with sync_peer("--mode", "threading", "--host", "flask") as peer:
        run = await run_client(node_tools, peer.url, scenario, js_pkg)
        assert run.ok, run.describe()
    assert not [line for line in peer.seen if line.startswith("FAILED")], peer.seen


# -- a sync client against node/server.js -----------------------------------------------------------
def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_all(stream: sync.IOStream, data: bytes, piece: int = 65537) -> threading.Thread:
    def run() -> None:
        for offset in range(0, len(data), piece):
            stream.write(data[offset : offset + piece], timeout=TIMEOUT)
        stream.end(timeout=TIMEOUT)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def big_up(streams: sync.StreamSocket) -> None:
    data = os.urandom(8 * MiB)
    stream = sync.create_stream()
    writer = write_all(stream, data)
    assert streams.call("sha", stream, timeout=TIMEOUT) == (sha(data), len(data))
    writer.join(TIMEOUT)


def big_down(streams: sync.StreamSocket) -> None:
    stream, digest = streams.call("download", {"size": 8 * MiB}, timeout=TIMEOUT)
    data = stream.read(timeout=TIMEOUT)
    assert len(data) == 8 * MiB and sha(data) == digest


def file(streams: sync.StreamSocket) -> None:
    # The server writes a file into s1; we pipe s1 into s2, which the server hashes.
    s1, s2 = sync.create_stream(), sync.create_stream()
    results: dict[str, Any] = {}
    caller = threading.Thread(
        target=lambda: results.update(sent=streams.call("file", s1, {"size": 300000}, timeout=TIMEOUT))
    )
    caller.start()
    piper = threading.Thread(target=sync.pipe, args=(s1, s2), kwargs={"timeout": TIMEOUT})
    piper.start()
    got, size = streams.call("sha", s2, timeout=TIMEOUT)
    caller.join(TIMEOUT)
    piper.join(TIMEOUT)
    assert size == 300000 and got == results["sent"]


def object_echo(streams: sync.StreamSocket) -> None:
    values = [{"foo": 0}, {"bar": 1}, "baz", [1, 2], {"n": {"a": [True, None]}}]
    echoed: list[Any] = []
    arrived = threading.Event()
    streams.on("echo", lambda stream: (echoed.append(stream), arrived.set()))
    stream = sync.create_stream(object_mode=True)
    streams.emit("echo", stream)
    for value in values:
        stream.write(value, timeout=TIMEOUT)
    stream.end(timeout=TIMEOUT)
    assert arrived.wait(TIMEOUT)
    assert list(echoed[0]) == values


CLIENT: dict[str, Callable[[sync.StreamSocket], None]] = {
    "big-up": big_up,
    "big-down": big_down,
    "file": file,
    "object": object_echo,
}


@pytest.mark.parametrize("scenario", sorted(CLIENT))
async def test_sync_client_against_node_server(node_server, js_pkg, scenario):
    node = await node_server(js_pkg)

    def client_side() -> None:
        client = socketio.Client(reconnection=False)
        streams = sync.ss(client)
        client.connect(node.url, transports=["websocket"], wait_timeout=TIMEOUT)
        try:
            CLIENT[scenario](streams)
            eventually(lambda: streams.stream_count() == 0)
        finally:
            client.disconnect()

    await anyio.to_thread.run_sync(client_side)
    await node.stop()
    node.check_no_uncaught()
