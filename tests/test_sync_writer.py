"""The sync ``call(..., writer=...)`` over a real socketio.Server and Client (threading mode,
127.0.0.1): the ack or the one error that says why, and the writer always ended when the call
returns (issue 25, point 1, as the async tests/test_writer.py)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio

from sio_stream import ConnectionAbortedStreamError, HandlerError, StreamTimeoutError, sync
from tests.sync_support import sync_client, sync_server

SIZE = 8 * 1024 * 1024  # well above a stream's credit window: the writer waits on the reader


@pytest.fixture
def pair() -> Iterator[tuple[socketio.Server, sync.StreamSocket, sync.StreamSocket]]:
    with sync_server() as (sio, url), sync_client(url, reconnection=False) as client:
        server_streams = sync.ss(sio)
        client_streams = sync.ss(client)
        client.connect(url, transports=["websocket"])
        yield sio, server_streams, client_streams


def tracked(write: Callable[[], Any]) -> tuple[Callable[[], Any], threading.Event]:
    """``write`` and an event set once it has returned or raised."""
    ended = threading.Event()

    def run() -> Any:
        try:
            return write()
        finally:
            ended.set()

    return run, ended


def test_call_with_a_writer_returns_the_ack(pair: Any, tmp_path: Path) -> None:
    _, server_streams, client_streams = pair

    @server_streams.on("upload")
    def upload(sid: str, stream: sync.IOStream) -> str:
        return hashlib.sha256(stream.read(timeout=60)).hexdigest()

    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(SIZE))
    stream = sync.create_stream()
    writer, ended = tracked(lambda: sync.send_file(stream, source))
    assert (
        client_streams.call("upload", stream, writer=writer)
        == hashlib.sha256(source.read_bytes()).hexdigest()
    )
    assert ended.is_set()


def test_a_refusal_raises_the_handlers_error_and_the_writer_has_ended(pair: Any) -> None:
    _, server_streams, client_streams = pair

    @server_streams.on("upload")
    def upload(sid: str, stream: sync.IOStream) -> None:
        raise HandlerError("uploads are closed")

    stream = sync.create_stream()
    writer, ended = tracked(lambda: stream.write(os.urandom(SIZE), timeout=60))
    with pytest.raises(HandlerError, match=r"^uploads are closed$"):
        client_streams.call("upload", stream, writer=writer)
    assert ended.is_set()


def test_a_dropped_connection_raises_connection_aborted(pair: Any, tmp_path: Path) -> None:
    sio, server_streams, client_streams = pair

    @server_streams.on("upload")
    def upload(sid: str, stream: sync.IOStream) -> None:
        stream.read(1, timeout=60)
        sio.disconnect(sid)

    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(SIZE))
    stream = sync.create_stream()
    writer, ended = tracked(lambda: sync.send_file(stream, source))
    with pytest.raises(ConnectionAbortedStreamError):
        client_streams.call("upload", stream, writer=writer)
    assert ended.is_set()


def test_a_local_failure_of_the_writer_is_what_is_raised(pair: Any, tmp_path: Path) -> None:
    _, server_streams, client_streams = pair

    @server_streams.on("upload")
    def upload(sid: str, stream: sync.IOStream) -> None:
        stream.read(timeout=60)

    stream = sync.create_stream()
    with pytest.raises(FileNotFoundError):
        client_streams.call("upload", stream, writer=lambda: sync.send_file(stream, tmp_path / "missing"))


def test_a_call_that_times_out_stops_a_writer_blocked_on_its_stream(pair: Any) -> None:
    _, server_streams, client_streams = pair
    release = threading.Event()

    @server_streams.on("upload")
    def upload(sid: str, stream: sync.IOStream) -> None:
        release.wait(60)  # never reads

    stream = sync.create_stream()
    writer, ended = tracked(lambda: stream.write(os.urandom(SIZE), timeout=60))
    with pytest.raises(StreamTimeoutError):
        client_streams.call("upload", stream, timeout=0.3, writer=writer)
    assert ended.is_set()  # the stream was destroyed under it: it did not wait its 60 s
    release.set()
