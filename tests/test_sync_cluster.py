"""The sync API on two Flask-SocketIO nodes joined by a Redis message queue (python-socketio's
``RedisManager``, Debian's redis-server): what works today. Streams stay on the node where the
client is connected: a stream to a local client moves intact while plain events still cross the
queue; a stream to a client of the other node fails at once with a clear error; a room reaches
the members connected to the emitting node (the asyncio cluster relay is not in the sync API)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest

from sio_stream import LocalProtocolError, sync
from tests.redis_support import redis_server
from tests.sync_support import eventually, serving, sync_client

MiB = 1024 * 1024
PATIENCE = 120


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Node:
    def __init__(self, redis_url: str, stack: ExitStack) -> None:
        from flask import Flask
        from flask_socketio import SocketIO, join_room

        self.app = Flask("sync-cluster")
        self.socketio = SocketIO(self.app, async_mode="threading", message_queue=redis_url)
        self.streams = sync.ss(self.socketio)

        @self.socketio.on("join")
        def join() -> bool:
            join_room("lobby")
            return True

        @self.streams.on("sha")
        def upload(stream: sync.IOStream) -> str:
            return sha(stream.read(timeout=PATIENCE))

        self.url = stack.enter_context(serving(self.app))


class Client:
    """A sync client that keeps the plain ``hello`` events and reads every ``file`` stream."""

    def __init__(self, url: str, stack: ExitStack) -> None:
        self.client = stack.enter_context(sync_client(url, reconnection=False))
        self.hellos: list[Any] = []
        self.files: list[str] = []
        self.client.on("hello", self.hellos.append)
        sync.ss(self.client).on("file", self.on_file)
        self.client.connect(url, transports=["websocket"])
        assert self.client.call("join", timeout=PATIENCE) is True
        self.sid = self.client.get_sid()

    def on_file(self, stream: sync.IOStream, meta: Any) -> str:
        digest = sha(stream.read(timeout=PATIENCE))
        self.files.append(digest)
        return digest


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    # For the whole session: python-socketio's RedisManager listens in a thread that cannot be
    # stopped, and retries (with an error line) for as long as its Redis is gone.
    with redis_server() as url:
        yield url


@contextmanager
def two_nodes(redis_url: str) -> Iterator[tuple[Node, Node, ExitStack]]:
    with ExitStack() as stack:
        yield Node(redis_url, stack), Node(redis_url, stack), stack


def feed(stream: sync.IOStream, data: bytes) -> None:
    for offset in range(0, len(data), 200_000):
        stream.write(data[offset : offset + 200_000], timeout=PATIENCE)
    stream.end(timeout=PATIENCE)


def test_streams_to_local_clients_move_while_plain_events_cross_the_queue(redis_url: str) -> None:
    with two_nodes(redis_url) as (one, two, stack):
        a, b = Client(one.url, stack), Client(two.url, stack)
        data = os.urandom(4 * MiB + 1)
        up = sync.create_stream()
        writer = threading.Thread(target=feed, args=(up, data))
        writer.start()
        assert sync.ss(a.client).call("sha", up, timeout=PATIENCE) == sha(data)
        writer.join(PATIENCE)
        down = sync.create_stream()
        ack = two.streams.call("file", down, {}, to=b.sid, writer=lambda: feed(down, data), timeout=PATIENCE)
        assert ack == sha(data) and b.files == [sha(data)]
        # The queue is live: node one's plain emit reaches node two's client.
        one.socketio.emit("hello", {"from": "one"}, to=b.sid)
        eventually(lambda: b.hellos == [{"from": "one"}], PATIENCE)
        eventually(lambda: one.streams.stream_count() == 0 and two.streams.stream_count() == 0, PATIENCE)


def test_a_stream_to_a_client_of_the_other_node_fails_at_once(redis_url: str) -> None:
    with two_nodes(redis_url) as (one, two, stack):
        b = Client(two.url, stack)
        stream = sync.create_stream()
        with pytest.raises(LocalProtocolError, match="another process"):
            one.streams.emit("file", stream, {}, to=b.sid)
        assert one.streams.stream_count() == 0


def test_a_room_reaches_the_members_of_the_emitting_node(redis_url: str) -> None:
    with two_nodes(redis_url) as (one, two, stack):
        local = [Client(one.url, stack) for _ in range(2)]
        remote = Client(two.url, stack)
        data = os.urandom(2 * MiB + 3)
        stream = sync.create_stream()
        acks = one.streams.call(
            "file", stream, {}, to="lobby", writer=lambda: feed(stream, data), timeout=PATIENCE
        )
        assert acks == {client.sid: sha(data) for client in local}
        assert remote.files == []  # documented: rooms do not span nodes in the sync API
