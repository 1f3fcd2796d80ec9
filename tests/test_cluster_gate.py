"""The bookkeeping of flow control per client between nodes (sio_stream.cluster._gate), both
roles, driven by hand: a real metered queue's meter on the client's node, real frames."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from engineio import packet

from sio_stream.cluster._frames import decode
from sio_stream.cluster._gate import FarGates
from sio_stream.glue._unsent import Meter

pytestmark = pytest.mark.anyio


class Owner:
    """A node as the gates see it: the frames it would publish, where its clients are."""

    def __init__(self) -> None:
        self.id = "me"
        self.sent: list[tuple[str, str, str]] = []  # (node, kind, sid)
        self.remote: dict[tuple[str, str], str] = {}
        self.waiting: dict[str, bool] = {}

    def put(self, node: str, frame: bytes) -> None:
        header, _args = decode(frame)
        self.sent.append((node, header["t"], header["sid"]))

    def remote_node(self, namespace: str, sid: Any) -> str | None:
        return self.remote.get((namespace, sid))

    def far_full(self, namespace: str, sid: str, full: bool) -> None:
        self.waiting[sid] = full


def _packet(size: int) -> Any:
    return packet.Packet(packet.MESSAGE, data=b"x" * size)


def test_the_clients_node_says_full_once_per_node_and_drained_to_each() -> None:
    owner = Owner()
    gates = FarGates(owner)
    meter = Meter(1000)
    meter.added(_packet(600))
    gates.delivered("a", "/", "s1", meter)
    assert owner.sent == []  # below the limit
    meter.added(_packet(600))
    gates.delivered("a", "/", "s1", meter)
    gates.delivered("a", "/", "s1", meter)
    gates.delivered("c", "/", "s1", meter)
    assert owner.sent == [("a", "full", "s1"), ("c", "full", "s1")]
    meter.removed(_packet(600))
    assert len(owner.sent) == 2  # 600 bytes: above half the limit
    meter.removed(_packet(600))
    assert sorted(owner.sent[2:]) == [("a", "drained", "s1"), ("c", "drained", "s1")]
    # Full again later: told again.
    meter.added(_packet(1200))
    gates.delivered("a", "/", "s1", meter)
    assert owner.sent[-1] == ("a", "full", "s1")


def test_a_client_that_leaves_is_forgotten_and_an_unmetered_queue_is_ignored() -> None:
    owner = Owner()
    gates = FarGates(owner)
    gates.delivered("a", "/", "s1", None)
    meter = Meter(1000)
    meter.added(_packet(1200))
    gates.delivered("a", "/", "s1", meter)
    gates.forget("/", "s1")
    # Its queue went with it: the node told opens now (it may get no `suspend`, holding no
    # stream of that client), and the queue's own drain says nothing more.
    assert owner.sent == [("a", "full", "s1"), ("a", "drained", "s1")]
    meter.removed(_packet(1200))
    assert len(owner.sent) == 2
    gates.forget("/", "s1")
    assert len(owner.sent) == 2  # forgotten once


def test_a_new_queue_for_the_same_client_opens_the_nodes_told_about_the_old_one() -> None:
    owner = Owner()
    gates = FarGates(owner)
    old, new = Meter(1000), Meter(1000)
    old.added(_packet(1200))
    gates.delivered("a", "/", "s1", old)
    gates.delivered("c", "/", "s1", old)
    new.added(_packet(1200))
    gates.delivered("a", "/", "s1", new)
    assert sorted(owner.sent[2:4]) == [("a", "drained", "s1"), ("c", "drained", "s1")]
    assert owner.sent[4:] == [("a", "full", "s1")]  # told anew, after its drained
    old.removed(_packet(1200))
    assert len(owner.sent) == 5  # the old queue's drain says nothing
    new.removed(_packet(1200))
    assert owner.sent[5:] == [("a", "drained", "s1")]


async def test_the_holding_nodes_record_waits_until_its_node_says_drained() -> None:
    owner = Owner()
    gates = FarGates(owner)
    owner.remote[("/", "s1")] = "b"
    gates.full("x", "/", "s1")  # not the client's node: ignored
    assert not gates.is_closed("/", "s1")
    gates.full("b", "/", "s1")
    assert gates.is_closed("/", "s1") and owner.waiting == {"s1": True}
    waiter = asyncio.ensure_future(gates.wait("/", "s1"))
    gates.open("/", "s1", "x")  # a drained from another node does not open it
    assert gates.is_closed("/", "s1") and not waiter.done()
    gates.open("/", "s1", "b")
    await asyncio.wait_for(waiter, 10)
    assert owner.waiting == {"s1": False}
    await asyncio.wait_for(gates.wait("/", "s1"), 10)  # open: returns at once


async def test_a_dead_node_opens_the_gates_of_its_clients() -> None:
    owner = Owner()
    gates = FarGates(owner)
    owner.remote[("/", "s1")] = "b"
    owner.remote[("/", "s2")] = "c"
    gates.full("b", "/", "s1")
    gates.full("c", "/", "s2")
    gates.node_lost("b")
    assert not gates.is_closed("/", "s1") and gates.is_closed("/", "s2")
