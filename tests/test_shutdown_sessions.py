"""Stopping a server ends its suspended sessions (issue 21): python-socketio's ``shutdown()``
(``AsyncServer`` and ``Server``) fails the streams of every session waiting for its client
with ``ConnectionAbortedStreamError`` at once and gives their bytes back to the process budget,
instead of keeping them for ``resume_timeout`` (30 s here) in a process that goes on; a drop
after the shutdown fails its streams at once too. Real servers and clients on 127.0.0.1,
through ``benchmarks/link.py``'s cutting relay (the fixtures of the resume tests)."""

from __future__ import annotations

import asyncio

import pytest

import sio_stream
from sio_stream import ConnectionAbortedStreamError, create_stream, sync
from sio_stream.core._config import DEFAULT_INITIAL_CREDIT
from tests.support import wait_for
from tests.sync_support import eventually
from tests.test_session_resume import session
from tests.test_sync_resume import sync_session

#: A write the stream cannot take at once, whatever initial credit the reader offered.
BEYOND_CREDIT = DEFAULT_INITIAL_CREDIT + (1 << 20)

pytestmark = pytest.mark.anyio


def used() -> int:
    return sio_stream.process_budget().used


async def test_shutdown_ends_the_suspended_sessions_at_once() -> None:
    before = used()
    async with session(reconnection=False) as setup:
        stream = create_stream()
        await setup.client_streams.emit("upload", stream)
        await stream.write(b"x" * 1000)
        await wait_for(lambda: setup.streams.stream_count() == 1)
        setup.link.cut()
        with pytest.raises(ConnectionAbortedStreamError):  # the client does not come back
            await asyncio.wait_for(stream.write(b"y" * BEYOND_CREDIT), 10)
        await wait_for(lambda: setup.streams.statistics().suspended == 1, 10)
        assert used() > before  # the reader's credit stays reserved for the client's return
        await setup.server.shutdown()
        setup.shut_down = True
        # At once: no waiting for resume_timeout (30 s).
        assert setup.streams.statistics().suspended == 0 and setup.streams._sessions == {}
        assert setup.streams.stream_count() == 0
        assert used() <= before
        await wait_for(lambda: setup.uploads, 10)  # the handler's task sees its stream fail
        assert isinstance(setup.uploads[0], ConnectionAbortedStreamError), setup.uploads
        assert "the server shut down" in str(setup.uploads[0])


async def test_after_shutdown_a_drop_fails_the_streams_at_once() -> None:
    async with session(reconnection=False) as setup:
        stream = create_stream()
        await setup.client_streams.emit("upload", stream)
        await stream.write(b"x" * 1000)
        await wait_for(lambda: setup.streams.stream_count() == 1)
        await setup.server.shutdown()
        setup.shut_down = True
        setup.link.cut()
        await wait_for(lambda: setup.uploads, 10)  # not after resume_timeout (30 s)
        assert isinstance(setup.uploads[0], ConnectionAbortedStreamError), setup.uploads
        assert setup.streams.statistics().suspended == 0 and setup.streams._sessions == {}


def test_sync_shutdown_ends_the_suspended_sessions_at_once() -> None:
    before = used()
    with sync_session(reconnection=False) as setup:
        stream = sync.create_stream()
        setup.client_streams.emit("upload", stream)
        stream.write(b"x" * 1000)
        eventually(lambda: setup.streams.stream_count() == 1)
        setup.link.cut()
        with pytest.raises(ConnectionAbortedStreamError):  # the client does not come back
            stream.write(b"y" * BEYOND_CREDIT, timeout=10)
        eventually(lambda: setup.streams.statistics().suspended == 1, 10)
        assert used() > before
        setup.server.shutdown()
        assert setup.streams.statistics().suspended == 0 and setup.streams._sessions == {}
        assert setup.streams.stream_count() == 0
        assert used() <= before
        assert setup.done.wait(10)  # the handler's thread sees its stream fail
        assert isinstance(setup.results[0], ConnectionAbortedStreamError), setup.results
        assert "the server shut down" in str(setup.results[0])


def test_after_a_sync_shutdown_a_drop_fails_the_streams_at_once() -> None:
    with sync_session(reconnection=False) as setup:
        stream = sync.create_stream()
        setup.client_streams.emit("upload", stream)
        stream.write(b"x" * 1000)
        eventually(lambda: setup.streams.stream_count() == 1)
        setup.server.shutdown()
        setup.link.cut()
        assert setup.done.wait(10)  # not after resume_timeout (30 s)
        assert isinstance(setup.results[0], ConnectionAbortedStreamError), setup.results
        assert setup.streams.statistics().suspended == 0 and setup.streams._sessions == {}
