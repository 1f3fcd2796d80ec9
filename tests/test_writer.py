"""A stream's writer run beside the call that waits for the peer (``call(..., writer=...)``) or
on its own (``start_writer``), over a real server and client on 127.0.0.1: the right error is
raised or logged, nothing is left running, and asyncio never reports an exception as "never
retrieved" (issue 25, point 1)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from sio_stream import (
    ConnectionAbortedStreamError,
    HandlerError,
    IntegrityError,
    StreamBrokenError,
    create_stream,
    receive_file,
    send_file,
    start_writer,
)
from tests.support import unretrieved_exceptions, wait_for

pytestmark = pytest.mark.anyio

SIZE = 8 * 1024 * 1024  # well above a stream's credit window: the writer waits on the reader


@pytest.fixture
def big(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(SIZE))
    return path


def drop_after_first_chunk(pair: Any) -> None:
    """An ``upload`` handler that reads one chunk, then drops the client's connection."""

    @pair.server_streams.on("upload")
    async def upload(sid: str, stream: Any) -> None:
        await stream.receive()
        await pair.server.disconnect(sid)


async def test_call_with_a_writer_returns_the_ack(pair: Any, big: Path, tmp_path: Path) -> None:
    @pair.server_streams.on("upload")
    async def upload(sid: str, stream: Any) -> str:
        digest = hashlib.sha256()
        await receive_file(stream, tmp_path / "stored.bin", hasher=digest)
        return digest.hexdigest()

    stream = create_stream()
    with unretrieved_exceptions() as reports:
        reply = await pair.client_streams.call("upload", stream, writer=send_file(stream, big))
    assert reply == hashlib.sha256(big.read_bytes()).hexdigest()  # noqa: ASYNC240 (a check)
    assert (tmp_path / "stored.bin").read_bytes() == big.read_bytes()  # noqa: ASYNC240
    assert reports == []


async def test_the_old_pattern_leaks_when_the_connection_drops(pair: Any, big: Path) -> None:
    # What the README showed: the call's task fails too, and nothing ever awaits it. This is
    # what the detector below must see, or the other tests here would prove nothing.
    drop_after_first_chunk(pair)
    stream = create_stream()
    with unretrieved_exceptions() as reports:
        reply = asyncio.create_task(pair.client_streams.call("upload", stream))
        with pytest.raises(StreamBrokenError):
            await send_file(stream, big)
        await wait_for(reply.done)
        del reply
    assert [type(r["exception"]) for r in reports] == [ConnectionAbortedStreamError]


async def test_a_dropped_connection_raises_once_and_leaks_nothing(pair: Any, big: Path) -> None:
    drop_after_first_chunk(pair)
    stream = create_stream()
    with unretrieved_exceptions() as reports, pytest.raises(ConnectionAbortedStreamError):
        await pair.client_streams.call("upload", stream, writer=send_file(stream, big))
    assert reports == []


async def test_a_refusal_raises_the_handlers_error_not_the_broken_stream(pair: Any, big: Path) -> None:
    @pair.server_streams.on("upload")
    async def upload(sid: str, stream: Any) -> None:
        raise HandlerError("uploads are closed")

    stream = create_stream()
    with unretrieved_exceptions() as reports, pytest.raises(HandlerError, match=r"^uploads are closed$"):
        await pair.client_streams.call("upload", stream, writer=send_file(stream, big))
    assert reports == []


async def test_a_local_failure_of_the_writer_is_what_is_raised(pair: Any, tmp_path: Path) -> None:
    @pair.server_streams.on("upload")
    async def upload(sid: str, stream: Any) -> None:
        await stream.read()

    stream = create_stream()
    with unretrieved_exceptions() as reports, pytest.raises(FileNotFoundError):
        await pair.client_streams.call("upload", stream, writer=send_file(stream, tmp_path / "missing"))
    assert reports == []
    assert stream.error is not None  # send_file destroyed it: the server's handler failed too


async def test_a_broken_stream_after_a_good_ack_is_raised(pair: Any) -> None:
    # The handler answers before it reads, then fails the stream: the ack alone would hide it.
    @pair.server_streams.on("upload")
    async def upload(sid: str, stream: Any) -> str:
        stream.destroy(IntegrityError("not what was announced"))
        return "fine"

    stream = create_stream()

    async def write() -> None:
        await stream.write(os.urandom(SIZE))
        await stream.end()

    with (
        unretrieved_exceptions() as reports,
        pytest.raises(StreamBrokenError, match="not what was announced"),
    ):
        await pair.client_streams.call("upload", stream, writer=write())
    assert reports == []


async def test_cancelling_the_call_stops_the_writer_first(pair: Any) -> None:
    never = asyncio.Event()

    @pair.server_streams.on("upload")
    async def upload(sid: str, stream: Any) -> None:
        await never.wait()  # never reads

    stream = create_stream()
    writing = asyncio.Event()
    ended: list[str] = []

    async def write() -> None:
        writing.set()
        try:
            await stream.write(os.urandom(SIZE))  # waits for credit that never comes
        finally:
            ended.append("writer")

    with unretrieved_exceptions() as reports:
        call = asyncio.create_task(pair.client_streams.call("upload", stream, writer=write()))
        await writing.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert ended == ["writer"]  # stopped before the cancelled call returned
    assert reports == []
    never.set()


async def test_start_writer_logs_a_stream_failure_as_one_warning(pair: Any, big: Path, caplog: Any) -> None:
    @pair.server_streams.on("fetch")
    async def fetch(sid: str) -> Any:
        stream = create_stream()
        start_writer(send_file(stream, big))
        return stream

    with caplog.at_level(logging.INFO, logger="sio_stream"), unretrieved_exceptions() as reports:
        stream = await pair.client_streams.call("fetch")
        await stream.receive()
        stream.destroy(StreamBrokenError("the reader gave up"))
        await wait_for(lambda: "writer stopped" in caplog.text)
    assert reports == []
    (record,) = [r for r in caplog.records if "writer" in r.getMessage()]
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "the reader gave up" in record.getMessage()


async def test_start_writer_logs_any_other_failure_with_its_traceback(tmp_path: Path, caplog: Any) -> None:
    stream = create_stream()
    with caplog.at_level(logging.INFO, logger="sio_stream"), unretrieved_exceptions() as reports:
        task = start_writer(send_file(stream, tmp_path / "missing"))
        assert await task is None
    assert reports == []
    (record,) = [r for r in caplog.records if "writer" in r.getMessage()]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.exc_info[0] is FileNotFoundError
    assert stream.error is not None
