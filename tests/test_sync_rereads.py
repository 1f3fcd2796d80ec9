"""Negotiated ``resume`` in the sync API for an object stream whose carrying event is lost in a
drop (issue 21): a ``socketio.Client`` emits ``fetch`` with a fresh object stream it reads and
the ``socketio.Server`` writes into; the cut (through ``benchmarks/link.py``'s relay on a
thread of its own) loses the event with the reader's credit. After the resume the event goes
again and every object arrives, the handler running once. The sync driver shares the core
with asyncio (see test_session_rereads_core.py for the cases at the core)."""

from __future__ import annotations

import threading
from typing import Any

from sio_stream import sync
from tests.sync_support import eventually
from tests.test_sync_resume import empty, nothing_retained, sync_session

#: A long delay line (0.2 s each way): the cut right after the emit always catches the event
#: and the reads still on their way, however busy the machine.
RTT = 0.4


def test_a_sync_object_download_whose_event_is_lost_in_a_drop_completes_after_the_resume() -> None:
    with sync_session(rtt=RTT) as setup:
        sent = [{"n": n, "pad": "x" * (n % 40)} for n in range(500)]
        runs: list[str] = []

        @setup.streams.on("fetch")
        def fetch(sid: str, name: str, stream: sync.IOStream) -> None:
            runs.append(name)
            for value in sent:
                stream.write(value, timeout=30)
            stream.end(timeout=30)

        stream = sync.create_stream(object_mode=True)
        got: list[Any] = []
        done = threading.Event()

        def read() -> None:
            got.extend(stream)
            done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        setup.client_streams.emit("fetch", "a", stream)
        core = stream._core
        eventually(lambda: core.window is not None and core.window.outstanding > 0)
        assert setup.link.cut() == 1
        assert runs == []  # the event never reached the server
        assert done.wait(60)
        reader.join(30)
        assert got == sent and stream.error is None
        assert runs == ["a"]
        assert setup.client_streams.statistics().resumes == 1
        eventually(lambda: empty(setup) and nothing_retained(setup))
