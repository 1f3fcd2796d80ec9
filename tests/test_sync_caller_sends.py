"""Packets emitted by the thread that queued them (sio_stream.sync._caller_sends): never with the
lock held, never left unsent, and, over a real socketio.Server and Client, a stream's chunks go
out without a hand-over to the connection's sender task."""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any

import pytest

from sio_stream import sync
from sio_stream.sync._caller_sends import LockThenSend
from tests.sync_support import sync_client, sync_server


class Recorder:
    """A claimed connection that records whether the lock was held when it was drained."""

    def __init__(self, lock: Any, fail: bool = False) -> None:
        self.lock = lock
        self.fail = fail
        self.drained_holding: list[bool] = []
        self.handed_over = 0

    def send_here(self) -> None:
        self.drained_holding.append(self.lock._is_owned())
        if self.fail:
            raise RuntimeError("cannot send")

    def hand_over(self) -> None:
        self.handed_over += 1


def test_the_outermost_block_drains_after_releasing_the_lock() -> None:
    lock = threading.RLock()
    send_after = LockThenSend(lock)
    first, second = Recorder(lock), Recorder(lock)
    with send_after:
        with send_after:  # nested: the outer block drains
            assert send_after.claim(first) is True
        assert first.drained_holding == []
        assert send_after.claim(second) is True
    assert first.drained_holding == [False]
    assert second.drained_holding == [False]


def test_no_claim_inside_a_plain_hold_of_the_lock() -> None:
    lock = threading.RLock()
    send_after = LockThenSend(lock)
    with lock, send_after:
        assert send_after.claim(Recorder(lock)) is False  # the sender task takes it
    with send_after:
        pass
    assert send_after.claim(Recorder(lock)) is False  # outside any block


def test_a_block_that_raises_still_drains_and_a_failed_drain_hands_the_rest_over() -> None:
    lock = threading.RLock()
    send_after = LockThenSend(lock)
    drained = Recorder(lock)
    with pytest.raises(ValueError), send_after:
        send_after.claim(drained)
        raise ValueError("the block failed")
    assert drained.drained_holding == [False]
    failing, rest = Recorder(lock, fail=True), Recorder(lock)
    with pytest.raises(RuntimeError), send_after:
        send_after.claim(failing)
        send_after.claim(rest)
    assert rest.drained_holding == [] and rest.handed_over == 1


def test_an_upload_is_emitted_by_the_threads_that_queued_it() -> None:
    chunk = 256 * 1024
    data = os.urandom(32 * chunk)
    with sync_server() as (sio, url):
        sync.ss(sio).on("up", lambda sid, stream: hashlib.sha256(b"".join(stream)).hexdigest())
        with sync_client(url) as client:
            streams = sync.ss(client)
            emitters: list[str] = []
            emit = client.emit

            def recording_emit(event: str, *args: Any, **kwargs: Any) -> Any:
                if event == "$stream-write":
                    emitters.append(threading.current_thread().name)
                return emit(event, *args, **kwargs)

            client.emit = recording_emit  # type: ignore[method-assign]
            client.connect(url, transports=["websocket"], wait_timeout=30)
            stream = sync.create_stream()

            def write() -> None:
                for offset in range(0, len(data), chunk):
                    stream.write(data[offset : offset + chunk], timeout=60)
                stream.end(timeout=60)

            assert streams.call("up", stream, writer=write, timeout=60) == hashlib.sha256(data).hexdigest()
    assert len(emitters) >= len(data) // (512 * 1024)  # chunks of up to max_chunk
    by_sender_task = [name for name in emitters if "_run_sender" in name]
    # Only a write queued while the sender task was still sending the call's event may go with it.
    assert len(by_sender_task) <= 2, by_sender_task
