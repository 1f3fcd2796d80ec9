"""Negotiated ``resume`` in the sync API for an event a client sends before the server's hello
has come back (issue 21; the asyncio case is test_resume_early_events.py): a ``socketio.Server``
(threading mode) and a ``socketio.Client`` on 127.0.0.1 through ``benchmarks/link.py``'s
cutting relay, cut while the handler runs; the answer python-socketio loses with the old
transport comes after the resume, once."""

from __future__ import annotations

import threading
from typing import Any

import socketio

from sio_stream import sync
from tests.sync_support import eventually, sync_server
from tests.threaded_link import threaded_link


def test_a_sync_event_sent_before_the_servers_hello_gets_its_answer_after_a_drop() -> None:
    release = threading.Event()
    runs: list[int] = []
    answers: list[tuple[Any, ...]] = []
    answered = threading.Event()
    sent_at_hello: list[int] = []
    with sync_server() as (server, url):
        streams = sync.ss(server, resume_timeout=30)

        @streams.on("slow")
        def slow(sid: str, n: int) -> int:
            runs.append(n)
            release.wait(60)  # answered while the session is suspended, or after the resume
            return n * 10

        with threaded_link(int(url.rsplit(":", 1)[1]), rtt=0.01) as link:
            client = socketio.Client(reconnection_delay=0.05, reconnection_delay_max=0.2)
            client_streams = sync.ss(client, resume_timeout=30)

            def on_answer(*args: Any) -> None:
                answers.append(args)
                answered.set()

            @client.on("connect")
            def connect() -> None:
                if runs or sent_at_hello:
                    return  # a reconnection
                core = client_streams._connections[None].core
                receive_hello = core.receive_hello

                def spy(info: Any) -> None:
                    if not sent_at_hello:
                        sent_at_hello.append(core.sent_events.sent)
                    receive_hello(info)

                core.receive_hello = spy  # type: ignore[method-assign]
                client_streams.emit("slow", 4, callback=on_answer)

            try:
                client.connect(link.url, transports=["websocket"])
                eventually(lambda: runs == [4] and bool(sent_at_hello))
                assert sent_at_hello == [1]  # the event left before the server's hello came back
                assert link.cut() == 1
                eventually(lambda: streams.statistics().suspended >= 1 or streams.resumes >= 1)
                release.set()  # python-socketio's ack goes to the dead transport
                assert answered.wait(60)
                eventually(lambda: client_streams.statistics().resumes == 1)
                assert answers == [(40,)]  # once
                assert runs == [4]  # handled once
            finally:
                release.set()
                client.disconnect()
