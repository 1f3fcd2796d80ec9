"""The sync API on servers in eventlet and gevent modes (socketio.Server and Flask-SocketIO),
each in a subprocess of its own (tests/sync_peer.py: monkey-patching never reaches pytest), with
a sync python-socketio client in this process."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from sio_stream import ConnectionAbortedStreamError, StreamError, sync
from tests.sync_support import PeerProcess, eventually, sync_client, sync_peer

MiB = 1024 * 1024
COMBINATIONS = [("eventlet", "flask"), ("eventlet", "socketio"), ("gevent", "flask"), ("gevent", "socketio")]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=COMBINATIONS, ids=["-".join(c) for c in COMBINATIONS])
def peer(request: pytest.FixtureRequest) -> Iterator[PeerProcess]:
    mode, host = request.param
    with sync_peer("--mode", mode, "--host", host) as process:
        yield process
    assert not [line for line in process.seen if line.startswith("FAILED")], process.seen


def write_all(stream: sync.IOStream, data: bytes, piece: int = 100_000) -> threading.Thread:
    def run() -> None:
        for offset in range(0, len(data), piece):
            stream.write(data[offset : offset + piece], timeout=60)
        stream.end(timeout=60)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_upload_and_download_a_few_mib_intact(peer: PeerProcess) -> None:
    with sync_client(peer.url, reconnection=False) as client:
        streams = sync.ss(client)
        client.connect(peer.url, transports=["websocket"])
        data = os.urandom(4 * MiB + 5)
        up = sync.create_stream()
        writer = write_all(up, data)
        assert streams.call("sha", up, timeout=60) == (sha(data), len(data))
        writer.join(60)
        down, digest = streams.call("download", {"size": 3 * MiB}, timeout=60)
        assert sha(down.read(timeout=60)) == digest
        eventually(lambda: streams.stream_count() == 0)


def test_a_relay_to_a_room(peer: PeerProcess) -> None:
    """One client's upload relayed by the server to the two other members of a room, each at
    its own pace (the sync fan-out's waits are the async mode's events: green threads here)."""
    with ExitStack() as stack:
        clients = []
        for _ in range(3):
            client = stack.enter_context(sync_client(peer.url, reconnection=False))
            streams = sync.ss(client)
            streams.on("relayed", lambda stream: sha(stream.read(timeout=60)))
            client.connect(peer.url, transports=["websocket"])
            assert streams.call("join", "lobby", timeout=60) is True
            clients.append(client)
        data = os.urandom(4 * MiB + 3)
        up = sync.create_stream()
        writer = write_all(up, data)
        acks = sync.ss(clients[0]).call("share", up, "lobby", timeout=60)
        writer.join(60)
        assert acks == {client.get_sid(): sha(data) for client in clients[1:]}


def test_a_disconnect_mid_transfer_fails_both_ends(
    peer: PeerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    with sync_client(peer.url, reconnection=False) as client:
        streams = sync.ss(client)
        client.connect(peer.url, transports=["websocket"])
        up = sync.create_stream()
        failures: dict[str, BaseException] = {}

        def write_up() -> None:
            try:
                while True:
                    up.write(b"u" * 65536, timeout=60)
            except StreamError as exc:
                failures["up"] = exc

        writer = threading.Thread(target=write_up)
        writer.start()
        down = streams.call("drop", up, timeout=60)
        with pytest.raises(StreamError) as info:
            while down.read(65536, timeout=60):
                pass
        failures["down"] = info.value
        writer.join(60)
        for name in ("up", "down"):
            assert isinstance(failures[name], ConnectionAbortedStreamError), failures
        line = peer.line("DROPPED ")
        assert json.loads(line.split(" ", 1)[1]) == {"up": "Connection aborted", "down": "Connection aborted"}
        eventually(lambda: streams.stream_count() == 0)
    # The server's DISCONNECT packet is handled off the read loop, which it joins.
    assert "cannot join current thread" not in caplog.text


@pytest.mark.parametrize("host", ["socketio", "flask"])
def test_gevent_under_load_of_small_binary_messages(host: str) -> None:
    """Thousands of binary messages each way (4 KiB chunks: two engine.io messages each) through
    a gevent server: simple-websocket 1.1.0 was seen dropping such connections (its issue 45)."""
    chunk = 4096
    with (
        sync_peer("--mode", "gevent", "--host", host, "--max-chunk", str(chunk)) as peer,
        sync_client(peer.url, reconnection=False) as client,
    ):
        streams = sync.ss(client, max_chunk=chunk)
        client.connect(peer.url, transports=["websocket"])
        data = os.urandom(24 * MiB)
        up = sync.create_stream()
        writer = write_all(up, data, MiB)
        assert streams.call("sha", up, timeout=60) == (sha(data), len(data))
        writer.join(60)
        down, digest = streams.call("download", {"size": 16 * MiB}, timeout=60)
        assert sha(down.read(timeout=60)) == digest
        assert client.connected
    assert not [line for line in peer.seen if line.startswith("FAILED")], peer.seen
