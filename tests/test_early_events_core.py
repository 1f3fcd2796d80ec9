"""Application events sent before the peer's hello came (issue 21), at the core, with two cores
back to back: they are kept and awaited in case the session can resume, their answers come
again after a drop, and nothing is kept once the peer shows it cannot resume (a hello without
``resume``, or, toward a server, a client whose first stream event is not a hello). Beside
them, two ways a resume lost or doubled an event: one it cannot send again (its call fails
instead of waiting), one whose emit failed at the drop (sent again once, not twice)."""

from __future__ import annotations

from typing import Any

from sio_stream import IOStream
from sio_stream.core import _wire as wire
from sio_stream.core._config import FEATURE_RESUME
from sio_stream.core._core import Outgoing
from sio_stream.core._sent_events import SentEvents
from sio_stream.glue._connection import ConnectionLogic
from tests.corepair import CorePair
from tests.test_session_events_core import resume
from tests.test_session_resume_core import config, cut


def test_an_event_sent_before_the_hello_gets_its_answer_after_a_drop() -> None:
    pair = CorePair(config(), config(), hello=False)
    answers: list[tuple[Any, ...]] = []
    pair.a.queue(Outgoing(wire.STREAM, ("slow", 4), lambda *args: answers.append(args)))
    assert pair.send(pair.a)  # out before the server's hello came back
    pair.a.receive_hello(pair.b.hello().args[0])
    pair.b.receive_hello(pair.a.hello().args[0])
    assert pair.a.resumable
    assert pair.a.sent_events.awaited() == [1]
    pair.deliver(pair.a)  # the server handles it; its answer is on the wire ...
    cut(pair)  # ... and lost
    assert answers == []
    resume(pair)
    pair.flush()
    assert answers == [()]  # once, from the reply the resume carried
    assert pair.b.events_received == 1


def test_an_event_lost_before_the_hello_is_sent_again_after_the_resume() -> None:
    pair = CorePair(config(), config(), hello=False)
    answers: list[tuple[Any, ...]] = []
    pair.a.queue(Outgoing(wire.STREAM, ("slow", 4), lambda *args: answers.append(args)))
    assert pair.send(pair.a)
    pair.a.receive_hello(pair.b.hello().args[0])
    pair.b.receive_hello(pair.a.hello().args[0])
    cut(pair)  # the event itself is lost
    resume(pair)
    pair.flush()
    assert [name for name, _args in pair.events[id(pair.b)]] == ["slow"]
    assert answers == [()]


def test_a_hello_without_resume_forgets_what_was_kept() -> None:
    pair = CorePair(config(), config(features=config().features - {FEATURE_RESUME}), hello=False)
    pair.a.queue(Outgoing(wire.STREAM, ("slow", 4), lambda *args: None))
    pair.a.queue(Outgoing(wire.STREAM, ("plain", 5)))
    assert pair.send(pair.a) and pair.send(pair.a)
    assert len(pair.a.sent_events) == 2 and pair.a.sent_events.awaited() == [1]
    pair.a.receive_hello(pair.b.hello().args[0])
    assert not pair.a.resumable
    assert len(pair.a.sent_events) == 0 and pair.a.sent_events.awaited() == []
    assert pair.a.sent_events.sent == 2  # still numbered
    pair.a.queue(Outgoing(wire.STREAM, ("later", 6)))
    assert pair.send(pair.a)
    assert len(pair.a.sent_events) == 0


def test_a_server_forgets_at_a_clients_first_stream_event_that_is_no_hello() -> None:
    pair = CorePair(config(), config(), hello=False)
    server = pair.b
    server.queue(Outgoing(wire.STREAM, ("news", 1)))
    assert pair.send(server)
    assert len(server.sent_events) == 1  # the client's hello may still come
    server.peer_without_hello()  # an npm client's first event: it never sends one
    assert len(server.sent_events) == 0 and not server.resumable
    server.queue(Outgoing(wire.STREAM, ("news", 2)))
    assert pair.send(server)
    assert len(server.sent_events) == 0


def test_without_resume_here_nothing_is_kept_before_the_hello() -> None:
    pair = CorePair(config(resume_timeout=0.0), config(), hello=False)
    pair.a.queue(Outgoing(wire.STREAM, ("slow", 4), lambda *args: None))
    assert pair.send(pair.a)
    assert len(pair.a.sent_events) == 0 and pair.a.sent_events.awaited() == []


def test_an_awaited_event_the_resume_cannot_send_again_is_answered_with_an_error() -> None:
    pair = CorePair(config(), config())
    pair.a.sent_events = SentEvents(cap=2)  # so that the oldest unconfirmed event is forgotten
    answers: dict[int, tuple[Any, ...]] = {}
    for n in range(3):
        pair.a.queue(Outgoing(wire.STREAM, ("slow", n), lambda *args, n=n: answers.setdefault(n, args)))
        assert pair.send(pair.a)
    cut(pair)  # all three are lost, and the first is forgotten: none can be sent again
    resume(pair)
    pair.flush()
    assert pair.events[id(pair.b)] == []
    lost = ({wire.ERROR_REPLY_KEY: "the event was lost with a dropped connection"},)
    assert answers == {1: lost, 2: lost}  # the first one's callback went with the cap
    assert pair.a.sent_events.awaited() == []
    pair.a.queue(Outgoing(wire.STREAM, ("after", 9), lambda *args: answers.setdefault(9, args)))
    pair.flush()
    assert answers[9] == ()  # numbered afresh from the peer's count, answered as usual


def test_an_event_whose_emit_failed_at_the_drop_goes_again_once() -> None:
    """python-socketio raised while sending an application event on a dying transport: the
    core kept the event when it handed it out, so the resume sends it again, once (putting it
    back in the outbox as well sent it twice: handled twice, answered twice)."""
    pair = CorePair(config(), config())
    logic = ConnectionLogic(config(), "test", IOStream)
    logic.core = pair.a
    answers: list[tuple[Any, ...]] = []
    pair.a.queue(Outgoing(wire.STREAM, ("ev", 1), lambda *args: answers.append(args)))
    item = pair.a.next_outgoing()
    assert item is not None and item.event == wire.STREAM
    assert logic.emit_failed(item, ConnectionError("transport closed"), live=False) is False
    cut(pair)
    resume(pair)
    pair.flush()
    assert pair.events[id(pair.b)] == [("ev", [1])]
    assert answers == [()]
    assert pair.b.events_received == 1
