"""One stream to many with the sync API: rooms, lists of sids, skip_sid, max_lag, relays and members
that leave, over a real threading socketio.Server (and Flask-SocketIO) with sync clients."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio

from sio_stream import (
    ConnectionAbortedStreamError,
    LocalProtocolError,
    StreamBrokenError,
    StreamTimeoutError,
    sync,
)
from tests.sync_support import eventually, serving, sync_server

MiB = 1024 * 1024
DATA = os.urandom(8 * MiB + 123)
#: Seconds any one step may take on a busy machine before the test fails.
PATIENCE = 120


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def feed(stream: sync.IOStream, data: bytes, piece: int = 200_000) -> None:
    for offset in range(0, len(data), piece):
        stream.write(data[offset : offset + piece], timeout=PATIENCE)
    stream.end(timeout=PATIENCE)


@dataclass
class Member:
    """A sync client in the room: it reads every "file" stream whole, once ``gate`` is set."""

    client: socketio.Client
    sid: str = ""
    gate: threading.Event = field(default_factory=threading.Event)
    #: Set once the first bytes arrived (the member is reading, with its window open).
    first: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    #: Bytes read so far (of the stream being read).
    read: int = 0
    data: bytes | None = None
    error: BaseException | None = None

    def on_file(self, stream: sync.IOStream, meta: Any) -> str:
        self.gate.wait(PATIENCE)
        parts = []
        try:
            for chunk in stream:
                parts.append(chunk)
                self.read += len(chunk)
                self.first.set()
            self.data = b"".join(parts)
        except StreamBrokenError as exc:
            self.error = exc
            raise
        finally:
            self.done.set()
        return sha(self.data)

    def received(self) -> bytes:
        assert self.done.wait(PATIENCE), f"{self.sid} got nothing"
        assert self.error is None, self.error
        assert self.data is not None
        return self.data


@dataclass
class Room:
    sio: socketio.Server
    streams: sync.StreamSocket
    url: str
    members: list[Member] = field(default_factory=list)

    @property
    def sids(self) -> list[str]:
        return [member.sid for member in self.members]

    def join(self, stack: ExitStack, count: int, **client_options: Any) -> list[Member]:
        joined = []
        for _ in range(count):
            client = socketio.Client()
            member = Member(client)
            member.gate.set()
            sync.ss(client, **client_options).on("file", member.on_file)
            client.connect(self.url, transports=["websocket"])
            member.sid = client.get_sid() or ""
            self.members.append(member)
            joined.append(member)
        stack.callback(disconnect_all, [member.client for member in joined])
        eventually(lambda: len(list(self.sio.manager.get_participants("/", "lobby"))) == len(self.members))
        return joined


def disconnect_all(clients: list[socketio.Client]) -> None:
    """Disconnect ``clients`` at once (a sync client's disconnect takes seconds: one after the
    other, they made most of these tests' time)."""
    threads = [threading.Thread(target=c.disconnect) for c in clients if c.connected]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE)


def lobby_server(sio: socketio.Server) -> None:
    @sio.event
    def connect(sid: str, environ: Any, auth: Any) -> None:
        sio.enter_room(sid, "lobby")


@contextmanager
def room_of(count: int, **client_options: Any) -> Iterator[Room]:
    with sync_server() as (sio, url), ExitStack() as stack:
        lobby_server(sio)
        room = Room(sio, sync.ss(sio), url)
        room.join(stack, count, **client_options)
        yield room
        stack.close()
        eventually(lambda: room.streams.stream_count() == 0, PATIENCE)


def in_thread(work: Callable[[], Any]) -> Callable[[], Any]:
    """Run ``work`` in a thread; return a function that waits for its result (or raises)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def result() -> Any:
        thread.join(PATIENCE)
        assert not thread.is_alive(), "still running"
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    return result


def test_one_stream_to_a_room_reaches_every_member_intact() -> None:
    with room_of(4) as room:
        stream = sync.create_stream()
        acks = room.streams.call(
            "file", stream, {"name": "a"}, to="lobby", writer=lambda: feed(stream, DATA), timeout=PATIENCE
        )
        assert acks == {sid: sha(DATA) for sid in room.sids}
        for member in room.members:
            assert member.received() == DATA


def test_a_list_of_sids_and_skip_sid() -> None:
    with room_of(4) as room:
        first, second, third, fourth = room.members
        acked: list[tuple[str, str]] = []
        all_acked = threading.Event()

        def on_ack(sid: str, digest: str) -> None:
            acked.append((sid, digest))
            if len(acked) == 2:
                all_acked.set()

        data = DATA[: 3 * MiB]
        stream = sync.create_stream()
        room.streams.emit("file", stream, {}, to=[first.sid, third.sid], callback=on_ack)
        feed(stream, data)
        assert all_acked.wait(PATIENCE)
        assert sorted(acked) == sorted([(first.sid, sha(data)), (third.sid, sha(data))])

        stream = sync.create_stream()
        acks = room.streams.call(
            "file",
            stream,
            {},
            to="lobby",
            skip_sid=[first.sid, fourth.sid],
            writer=lambda: feed(stream, data),
        )
        assert acks == {second.sid: sha(data), third.sid: sha(data)}
        # Each member got exactly what was sent to it: the skipped ones were never called.
        assert not fourth.done.is_set() and second.received() == data

        with pytest.raises(LocalProtocolError, match="no client in 'lobby' is connected"):
            room.streams.emit("file", sync.create_stream(), {}, to="lobby", skip_sid=room.sids)


def test_a_relay_of_an_upload_to_the_room() -> None:
    with room_of(4) as room:
        uploader = room.members[0]

        @room.streams.on("send-to")
        def send_to(sid: str, stream: sync.IOStream, target: str) -> Any:
            # The stream this client is writing goes on to everyone else in the room.
            return room.streams.call("file", stream, {"from": sid}, to=target, skip_sid=sid, timeout=PATIENCE)

        up = sync.create_stream()
        acks = sync.ss(uploader.client).call(
            "send-to", up, "lobby", writer=lambda: feed(up, DATA), timeout=PATIENCE
        )
        assert acks == {sid: sha(DATA) for sid in room.sids[1:]}
        for member in room.members[1:]:
            assert member.received() == DATA
        assert not uploader.done.is_set()


def test_a_relay_fails_its_recipients_when_the_sender_leaves() -> None:
    with room_of(3) as room:
        uploader = room.members[0]
        relayed = threading.Event()

        @room.streams.on("send-to")
        def send_to(sid: str, stream: sync.IOStream, target: str) -> None:
            room.streams.emit("file", stream, {"from": sid}, to=target, skip_sid=sid)
            relayed.set()

        up = sync.create_stream()
        sync.ss(uploader.client).emit("send-to", up, "lobby")
        up.write(DATA[:MiB], timeout=PATIENCE)
        assert relayed.wait(PATIENCE)
        uploader.client.disconnect()
        for member in room.members[1:]:
            assert member.done.wait(PATIENCE)
            # The server's relay failed their streams with the reason, over the wire.
            assert isinstance(member.error, StreamBrokenError)
            assert member.error.message == "Connection aborted"


def test_a_relay_fails_its_sender_when_every_recipient_leaves() -> None:
    with room_of(2) as room:
        uploader, member = room.members

        @room.streams.on("send-to")
        def send_to(sid: str, stream: sync.IOStream, target: str) -> None:
            room.streams.emit("file", stream, {"from": sid}, to=target, skip_sid=sid)

        up = sync.create_stream()
        sync.ss(uploader.client).emit("send-to", up, "lobby")
        up.write(DATA[:MiB], timeout=PATIENCE)
        assert member.first.wait(PATIENCE)
        member.client.disconnect()
        with pytest.raises(StreamBrokenError, match="every recipient left"):
            for offset in range(MiB, len(DATA), 65536):  # fails long before the end
                up.write(DATA[offset : offset + 65536], timeout=PATIENCE)
            up.end(timeout=PATIENCE)


def test_object_streams_to_a_room() -> None:
    with room_of(2) as room:
        got: dict[str, list[Any]] = {}
        for member in room.members:

            @sync.ss(member.client).on("ticks")
            def ticks(stream: sync.IOStream, sid: str = member.sid) -> int:
                got[sid] = list(stream)
                return len(got[sid])

        stream = sync.create_stream(object_mode=True)

        def write() -> None:
            for i in range(300):
                stream.write({"tick": i}, timeout=PATIENCE)
            stream.end(timeout=PATIENCE)

        assert room.streams.call("ticks", stream, to="lobby", writer=write) == {sid: 300 for sid in room.sids}
        assert got == {sid: [{"tick": i} for i in range(300)] for sid in room.sids}


def test_a_member_that_leaves_mid_stream_does_not_stop_the_others() -> None:
    with room_of(3) as room:
        leaver = room.members[0]
        stream = sync.create_stream()
        reply = in_thread(lambda: room.streams.call("file", stream, {}, to="lobby", timeout=PATIENCE))
        stream.write(DATA[: MiB // 2], timeout=PATIENCE)
        leaver.client.disconnect()
        feed(stream, DATA[MiB // 2 :])
        acks = reply()
        assert isinstance(acks[leaver.sid], ConnectionAbortedStreamError)
        for member in room.members[1:]:
            assert acks[member.sid] == sha(DATA)
            assert member.received() == DATA


def test_every_member_leaving_fails_the_writer() -> None:
    with room_of(2) as room:
        stream = sync.create_stream()
        room.streams.emit("file", stream, {}, to="lobby")
        stream.write(b"x" * 1000, timeout=PATIENCE)
        for member in room.members:
            member.client.disconnect()
        with pytest.raises(StreamBrokenError, match="every recipient left"):
            while True:  # bounded: the writer fails once both sub-streams have failed
                stream.write(b"x" * 65536, timeout=PATIENCE)


def test_a_slow_member_with_max_lag_is_dropped_and_the_others_go_on() -> None:
    # Read windows fixed at 2 MiB (8 chunks): a window grown to 16 MiB would let the writer run
    # that far ahead of what the fastest member read, and members reading at its pace with
    # smaller windows would then count as behind by the difference.
    with room_of(4, max_window=2 * MiB) as room:
        slow = room.members[0]
        slow.gate.clear()  # takes the stream, reads nothing until the gate opens
        # The slow member takes its read window and no more: with 24 MiB sent, what waits for
        # it passes max_lag, while members that read stay within it: the writer keeps within
        # 2 MiB of them (under max_lag the group moves at its fastest member's pace, and a reader
        # preempted on a busy machine, sharing this process's GIL, would count as a laggard too).
        data = DATA * 3
        stream = sync.create_stream()
        reply = in_thread(lambda: room.streams.call("file", stream, {}, to="lobby", max_lag=12 * MiB))
        readers = room.members[1:]
        for offset in range(0, len(data), 200_000):  # the laggard does not hold the others back
            eventually(lambda o=offset: min(m.read for m in readers) >= o - 2 * MiB, PATIENCE)
            stream.write(data[offset : offset + 200_000], timeout=PATIENCE)
        stream.end(timeout=PATIENCE)
        for member in room.members[1:]:
            assert member.received() == data
        slow.gate.set()
        acks = reply()
        assert {sid: acks[sid] for sid in room.sids[1:]} == {sid: sha(data) for sid in room.sids[1:]}
        # The laggard's stream failed with the reason, and its handler's failure came back.
        assert "fell behind by" in str(acks[slow.sid])
        assert slow.done.wait(PATIENCE) and "fell behind by" in str(slow.error)


def test_without_max_lag_the_room_moves_at_the_slowest_members_pace() -> None:
    # Members offer no initial credit: 16 MiB of it would take all 8 MiB and the writer would
    # never block (the pace under test is the slow member's window).
    with room_of(3, initial_credit=0) as room:
        slow = room.members[0]
        slow.gate.clear()
        stream = sync.create_stream()
        reply = in_thread(lambda: room.streams.call("file", stream, {}, to="lobby", timeout=PATIENCE))
        # The writer blocks once the slow member's window and buffer are full, well before the end.
        sent = 0
        with pytest.raises(StreamTimeoutError):
            while sent < len(DATA):
                stream.write(DATA[sent : sent + 65536], timeout=1)
                sent += 65536
        assert sent < len(DATA)
        assert not any(member.done.is_set() for member in room.members[1:])
        slow.gate.set()
        sent += 65536  # the write that timed out stays queued
        feed(stream, DATA[sent:])
        assert reply() == {sid: sha(DATA) for sid in room.sids}
        for member in room.members:
            assert member.received() == DATA


def test_a_flask_socketio_server_sends_to_a_room() -> None:
    from flask import Flask
    from flask_socketio import SocketIO, join_room

    app = Flask("sync-rooms")
    socketio_app = SocketIO(app, async_mode="threading")
    streams = sync.ss(socketio_app)

    @socketio_app.on("connect")
    def connect() -> None:
        join_room("lobby")

    with serving(app) as url, ExitStack() as stack:
        room = Room(socketio_app.server, streams, url)
        room.join(stack, 3)
        stream = sync.create_stream()
        acks = streams.call(
            "file", stream, {}, to="lobby", writer=lambda: feed(stream, DATA), timeout=PATIENCE
        )
        assert acks == {sid: sha(DATA) for sid in room.sids}
        for member in room.members:
            assert member.received() == DATA
        stack.close()
        eventually(lambda: streams.stream_count() == 0, PATIENCE)
