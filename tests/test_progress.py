"""Progress and safety of flow control, driven by hypothesis over two cores back to back.

Many streams share one connection, in both directions. Each end has a role: a writer writes
its data and ends (active) or never writes (quiet); a reader consumes what arrives (active)
or stops consuming (stalled). Hypothesis interleaves their steps, the delivery of every
packet, and hostile writes beyond credit. Then every active end runs to completion.

* **Safety**, after every step: no connection account holds or reserves more than its limit,
  nor the process account more than its limit, whatever the peer sent; with initial credit
  offered (negotiated ``initial-credit``), beyond that by at most the offers taken (a taken
  offer is reserved whatever the budgets hold: the peer holds the credit already).
* **Progress**, at the end: every stream whose writer and reader are both active finished,
  intact and in order, whatever the quiet, stalled, hostile or destroyed streams beside it did
  (the application destroys either end at any point: while its reader waits for a turn of the
  connection window, holds credit, or holds unread bytes).
* **Nothing stays reserved**: once the application destroyed every stream left, both
  connections and the process hold and reserve nothing, and no debt, turn or budget waiter
  is left behind.

On the second wave's main the progress property fails: a quiet stream's window reserved the
connection window, and no other stream was ever granted credit (issue 20).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import hypothesis.strategies as st
from hypothesis import HealthCheck, event, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from sio_stream import StreamClosedError
from sio_stream.core import _placeholder as placeholders
from sio_stream.core import _wire as wire
from sio_stream.core._budget import OFFER_SHARE, Budget
from sio_stream.core._config import FINAL_SIZE_KEY
from sio_stream.core._core import FEATURE_RESUME, OUR_FEATURES, CoreConfig, Outgoing, ProtocolCore, StreamCore
from sio_stream.core._options import StreamOptions
from sio_stream.core._state import ReadState, WriteState
from sio_stream.core._turns import STALL_CHECK
from tests.corepair import CorePair

MAX_STREAMS = 8
MAX_FLOWS = 6  # every flow is a stream on both cores: within MAX_STREAMS on each
PROCESS_LIMIT = 24 * 1024  # two connections of 16 KiB contend for it
#: When a busy round destroys a stream: its reader waits for its turn, or holds credit from the
#: pool (a turn's); and whether the reader or the writer is destroyed.
WHEN = ("waiting", "holding")
Destroy = tuple[int, str, bool]
#: Initial credit each side offers when the example turns it on: one chunk, so that both
#: offers fit in the process's share of offers (1/8 of its limit, 3 KiB).
OFFER = 1024


def config(
    process: Budget, clock: Callable[[], float], initial: bool = False, resume: bool = False
) -> CoreConfig:
    # Small numbers so that a few streams fill every bound: windows of 4 KiB that may grow to
    # 32 KiB, a connection window of 4 KiB (it grows with them), 16 KiB per connection (floors
    # of 1 KiB).
    return CoreConfig(
        window=4,
        object_window=8,
        max_chunk=1024,
        max_read_chunk=4096,
        connection_window=4096,
        max_buffered=16 * 1024,
        max_streams=MAX_STREAMS,
        process_budget=process,
        idle_timeout=None,
        max_window=32 * 1024,  # windows may grow to 32 chunks (window-growth)
        initial_credit=OFFER if initial else 0,
        # With resume, a writer keeps what its reader has not said it received, and a reader
        # waiting for its turn says so in a read of 0 credits (_reading.py, _wait_turn).
        features=OUR_FEATURES | {FEATURE_RESUME} if resume else OUR_FEATURES,
        resume_timeout=30.0 if resume else 0.0,
        clock=clock,
    )


@dataclass
class Flow:
    source: ProtocolCore
    sink: ProtocolCore
    writer: StreamCore
    slot: int  # its place among the streams the sink decodes (the reader appears there)
    data: bytes
    writes: bool  # the writer is active (else quiet: it never writes)
    reads: bool  # the reader is active (else stalled: it stops consuming)
    written: int = 0
    received: bytearray = field(default_factory=bytearray)
    hostile: bool = False  # the peer wrote beyond credit on it: its stream may fail
    destroyed: bool = False  # the application destroyed one of its ends
    reader: StreamCore | None = None  # once the event announcing it was delivered

    @property
    def must_finish(self) -> bool:
        return self.writes and self.reads and not self.hostile and not self.destroyed


class FlowControl(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.process = Budget(PROCESS_LIMIT)
        # Simulated time, moved by the steps (round trips and window growth depend on what
        # hypothesis chose, never on the machine's speed).
        self.now = 0.0
        self.flows: list[Flow] = []
        self.pair: CorePair

    @initialize(hello=st.booleans(), initial=st.booleans(), resume=st.booleans())
    def connect(self, hello: bool, initial: bool, resume: bool) -> None:
        self.pair = CorePair(
            config(self.process, self.clock, initial, resume),
            config(self.process, self.clock, initial, resume),
            hello=hello,
        )

    def clock(self) -> float:
        return self.now

    @rule(seconds=st.sampled_from([0.001, 0.05, 1.0]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        if seconds >= STALL_CHECK:
            self._stall_checks()

    def _stall_checks(self) -> None:
        """What the drivers do every STALL_CHECK seconds while debts wait for their turn."""
        self.pair.a.check_turns()
        self.pair.b.check_turns()

    # -- streams and their ends ----------------------------------------------------------
    @precondition(lambda self: len(self.flows) < MAX_FLOWS)
    @rule(
        forward=st.booleans(),
        writes=st.booleans(),
        reads=st.booleans(),
        size=st.integers(min_value=0, max_value=12 * 1024),
        seed=st.integers(min_value=0, max_value=255),
    )
    def open_stream(self, forward: bool, writes: bool, reads: bool, size: int, seed: int) -> None:
        self._open(forward, writes, reads, size, seed)

    @precondition(lambda self: len(self.flows) < MAX_FLOWS)
    @rule(
        forward=st.booleans(),
        count=st.integers(min_value=2, max_value=MAX_FLOWS),
        size=st.integers(min_value=1024, max_value=12 * 1024),
    )
    def open_bulk_streams(self, forward: bool, count: int, size: int) -> None:
        """Several active streams of one size in one direction: with every end busy they owe
        credit together, and take turns of the connection window."""
        for seed in range(min(count, MAX_FLOWS - len(self.flows))):
            self._open(forward, True, True, size, seed)

    @precondition(
        lambda self: (
            len(self.flows) < MAX_FLOWS
            and (self.pair.a.peer_offer is not None or self.pair.b.peer_offer is not None)
        )
    )
    @rule(
        forward=st.booleans(),
        reads=st.booleans(),
        size=st.integers(min_value=1, max_value=12 * 1024),
        seed=st.integers(min_value=0, max_value=255),
    )
    def open_primed_stream_overtaken(self, forward: bool, reads: bool, size: int, seed: int) -> None:
        """A stream that takes the peer's initial credit: its first writes go at once, and they
        overtake its event on the wire (sio_stream.core._early)."""
        if self.pair.a.peer_offer is None or self.pair.b.peer_offer is None:
            forward = self.pair.a.peer_offer is not None
        flow = self._open(forward, True, reads, size, seed)
        self._write(flow, len(flow.data))
        while self.pair.send(flow.source):
            pass
        self.event_overtaken(forward)

    def _open(self, forward: bool, writes: bool, reads: bool, size: int, seed: int) -> Flow:
        source, sink = (self.pair.a, self.pair.b) if forward else (self.pair.b, self.pair.a)
        writer = StreamCore(StreamOptions())
        # The event goes into the outbox like any other: hypothesis decides when it travels.
        source.queue(Outgoing(wire.STREAM, ("e", source.attach(writer))))
        source.announce(writer)
        slot = sum(1 for flow in self.flows if flow.sink is sink)
        data = bytes((seed + i) % 251 for i in range(size))
        flow = Flow(source, sink, writer, slot, data, writes, reads)
        self.flows.append(flow)
        return flow

    def _arrived(self) -> None:
        """Readers whose stream was announced start reading (a stalled one stops later)."""
        for flow in self.flows:
            decoded = self.pair.decoded[id(flow.sink)]
            if flow.reader is None and len(decoded) > flow.slot:
                # By id: an overtaken event (below) changes the order streams are decoded in.
                flow.reader = next((s for s in decoded if s.id == flow.writer.id), None)
                if flow.reader is not None:
                    flow.sink.start_reading(flow.reader)

    def _flow(self, index: int) -> Flow | None:
        self._arrived()
        return self.flows[index % len(self.flows)] if self.flows else None

    @rule(index=st.integers(min_value=0), size=st.integers(min_value=1, max_value=3000))
    def write(self, index: int, size: int) -> None:
        flow = self._flow(index)
        if flow is None or not flow.writes:
            return
        self._write(flow, size)

    @rule(index=st.integers(min_value=0))
    def write_all_and_end(self, index: int) -> None:
        """An active writer hands over the rest of its data and ends at once: what it has left
        travels with its writes (final-size), and its reader's stream takes turns with the
        others owed credit."""
        flow = self._flow(index)
        if flow is None or not flow.writes:
            return
        self._write(flow, len(flow.data))
        if flow.writer.error is None and flow.writer.write_state is WriteState.OPEN:
            flow.source.end(flow.writer)

    @rule(index=st.integers(min_value=0), size=st.integers(min_value=1, max_value=5000))
    def read(self, index: int, size: int) -> None:
        flow = self._flow(index)
        if flow is not None and flow.reads and flow.reader is not None and flow.reader.inbox:
            flow.received += flow.sink.take(flow.reader, size)

    @rule(
        rounds=st.integers(min_value=1, max_value=20),
        count=st.integers(min_value=1, max_value=6),
        destroy=st.one_of(
            st.none(),
            st.tuples(st.integers(min_value=0, max_value=12), st.sampled_from(WHEN), st.booleans()),
        ),
    )
    def everyone_busy(self, rounds: int, count: int, destroy: Destroy | None) -> None:
        """``rounds`` times: every active writer hands over all it has and ends, every active
        reader takes all that arrived, and ``count`` packets travel each way. Many streams then
        owe credit at once, and take turns. With ``destroy`` (``skip``, ``when``, ``reader``),
        the ``skip``-th time a delivery leaves a reader in state ``when`` (waiting for its turn,
        or holding credit a turn paid from the pool), the application destroys that stream's
        reader (or its writer, at the other end) right there."""
        for _ in range(rounds):
            destroy = self._busy_round(count, destroy)

    def _busy_round(self, count: int, destroy: Destroy | None) -> Destroy | None:
        self._arrived()
        for flow in self.flows:
            if flow.writes:
                self._write(flow, len(flow.data))
                if flow.writer.error is None and flow.writer.write_state is WriteState.OPEN:
                    flow.source.end(flow.writer)
            if flow.reads and flow.reader is not None:
                while flow.reader.inbox:
                    flow.received += flow.sink.take(flow.reader, 1 << 20)
        for core in self._cores():
            while self.pair.send(core):
                pass
        for _ in range(count):
            for core in self._cores():
                self.pair.deliver(core)
                if destroy is None:
                    continue
                skip, when, reader = destroy
                found = self._flows_in(when)
                if found and skip == 0:
                    self._destroy_end(found[0], when, reader)
                    destroy = None
                elif found:
                    destroy = (skip - 1, when, reader)
        return destroy

    def _flows_in(self, when: str) -> list[Flow]:
        """The flows whose reader waits for its turn (``when`` "waiting"), or holds credit from
        the pool, what a turn pays ("holding")."""
        found = []
        for flow in self.flows:
            reader = flow.reader
            if reader is None or reader.error is not None:
                continue
            pooled = reader.holding is not None and reader.holding.reserved > reader.holding.floor_reserved
            if (when == "waiting" and reader in flow.sink.turn_waiters) or (when == "holding" and pooled):
                found.append(flow)
        return found

    def _destroy_end(self, flow: Flow, when: str, reader: bool) -> None:
        assert flow.reader is not None
        end = "reader" if reader else "writer"
        event(f"destroyed the {end} of a stream whose reader is {when} (a turn)")
        flow.destroyed = True
        if reader:
            flow.sink.fail(flow.reader, StreamClosedError(f"destroyed while {when}"))
        else:
            flow.source.fail(flow.writer, StreamClosedError(f"destroyed while its reader is {when}"))

    @rule(index=st.integers(min_value=0), size=st.integers(min_value=1, max_value=8192))
    def hostile_write(self, index: int, size: int) -> None:
        """The peer writes a chunk straight into the reader, whatever its credit."""
        flow = self._flow(index)
        if flow is None or flow.reader is None:
            return
        flow.hostile = True
        flow.sink.receive_write(flow.writer.id, b"h" * size, "buffer")

    @rule(index=st.integers(min_value=0), reader=st.booleans())
    def destroy(self, index: int, reader: bool) -> None:
        """The application destroys one end of a stream, whatever it is doing (as
        ``IOStream.destroy()``): the peer is told, and the other end fails too."""
        flow = self._flow(index)
        if flow is None or (reader and flow.reader is None):
            return
        flow.destroyed = True
        if reader:
            assert flow.reader is not None
            flow.sink.fail(flow.reader, StreamClosedError("destroyed by its reader"))
        else:
            flow.source.fail(flow.writer, StreamClosedError("destroyed by its writer"))

    @precondition(lambda self: any(core.turn_waiters or core.starved for core in self._cores()))
    @rule(index=st.integers(min_value=0), waiting=st.booleans())
    def destroy_owed_reader(self, index: int, waiting: bool) -> None:
        """The application destroys a reader owed credit: one that waits for its turn of the
        connection window (``waiting``), or any stream the connection owes credit (it may hold
        credit from a turn already)."""
        owed = [
            flow
            for flow in self.flows
            if flow.reader is not None
            and (flow.reader in flow.sink.turn_waiters if waiting else flow.reader in flow.sink.starved)
        ]
        if not owed:
            return
        flow = owed[index % len(owed)]
        assert flow.reader is not None
        event("destroyed a reader waiting for its turn" if waiting else "destroyed a reader owed credit")
        flow.destroyed = True
        flow.sink.fail(flow.reader, StreamClosedError("destroyed while owed credit"))

    def _cores(self) -> tuple[ProtocolCore, ...]:
        return (self.pair.a, self.pair.b) if hasattr(self, "pair") else ()

    # -- the wire --------------------------------------------------------------------------
    @rule(forward=st.booleans(), count=st.integers(min_value=1, max_value=8))
    def send(self, forward: bool, count: int) -> None:
        core = self.pair.a if forward else self.pair.b
        for _ in range(count):
            self.pair.send(core)

    @rule(forward=st.booleans(), count=st.integers(min_value=1, max_value=8))
    def deliver(self, forward: bool, count: int) -> None:
        core = self.pair.a if forward else self.pair.b
        for _ in range(count):
            self.pair.deliver(core)

    @rule(forward=st.booleans())
    def event_overtaken(self, forward: bool) -> None:
        """The first ``$stream`` event on a wire goes behind the writes (and sized end) of its
        stream that follow it: with initial credit they reach the reader first, as when they
        took another path between cluster nodes (sio_stream.core._early)."""
        queue = self.pair.wires[id(self.pair.a if forward else self.pair.b)]
        items = list(queue)
        for i, item in enumerate(items):
            if isinstance(item, Outgoing) and item.event == wire.STREAM:
                ids = _stream_ids(item)
                j = i + 1
                while j < len(items) and _overtakes(items[j], ids):
                    j += 1
                if j > i + 1:
                    items[i:j] = [*items[i + 1 : j], item]
                    queue.clear()
                    queue.extend(items)
                return

    # -- safety ----------------------------------------------------------------------------
    @invariant()
    def within_budgets(self) -> None:
        if not self.flows:
            return
        taken = 0
        for core in (self.pair.a, self.pair.b):
            budget = core.budget
            # The offer this core's reader saw taken (its hello made one, none is left).
            offer = (
                OFFER
                if core.initial_offered and core.initial_offer is None and core.config.initial_credit
                else 0
            )
            taken += offer
            assert budget.held >= 0 and budget.reserved >= 0
            assert budget.held + budget.reserved <= budget.limit + offer, core.statistics()
            assert 0 <= budget.floor_used <= budget.floor_pool
            # Writes held before their event stay within the offer not taken yet (_early.py).
            assert core.early.bytes <= (core.initial_offer.bytes if core.initial_offer else 0)
        assert taken <= self.process.limit // OFFER_SHARE
        assert self.process.held + self.process.reserved <= self.process.limit + taken

    @invariant()
    def debts_of_live_readers(self) -> None:
        """Only a reader that reads is owed credit, and a stream waits for its turn only while
        it is owed some: a destroyed stream leaves no debt, no turn (a stale one kept the
        connection's turns running for nothing) and nothing reserved."""
        for core in self._cores():
            for stream in core.starved:
                assert stream.error is None and stream.read_state is ReadState.READING, stream.id
            assert core.turn_waiters.keys() <= core.starved.keys(), (core.turn_waiters, core.starved)
        for flow in self.flows:
            for end in (flow.writer, flow.reader):
                if end is not None and end.error is not None and end.holding is not None:
                    assert end.holding.reserved == 0 and end.holding.held == 0, end.id

    # -- progress --------------------------------------------------------------------------
    def _write(self, flow: Flow, size: int) -> None:
        if flow.writer.error is not None or flow.written >= len(flow.data):
            return
        piece = flow.data[flow.written : flow.written + size]
        flow.source.write(flow.writer, piece)
        flow.written += len(piece)

    def teardown(self) -> None:
        if not self.flows:
            return
        # Every active end does all it can, again and again, with every packet delivered.
        for _ in range(10_000):
            self._arrived()
            before = self._progress_marks()
            for flow in self.flows:
                if flow.writes and flow.writer.error is None:
                    self._write(flow, len(flow.data))
                    if flow.written >= len(flow.data) and flow.writer.write_state is WriteState.OPEN:
                        flow.source.end(flow.writer)
                if flow.reads and flow.reader is not None:
                    while flow.reader.inbox:
                        flow.received += flow.sink.take(flow.reader, 1 << 20)
            self.now += 1.0  # a round trip: what was granted now arrives one second later
            self._stall_checks()
            self.pair.flush()
            self.within_budgets()
            self._arrived()
            if self._progress_marks() == before:
                break
        for number, flow in enumerate(self.flows):
            if not flow.must_finish:
                continue
            assert flow.reader is not None, f"stream {number} was never announced"
            assert flow.reader.error is None and flow.writer.error is None, (number, flow.reader.error)
            assert bytes(flow.received) == flow.data, f"stream {number} stalled at {len(flow.received)}"
            assert flow.reader.readable_ended, f"stream {number} never ended"
            assert flow.writer.write_finished, f"stream {number}: its writer never finished"
        self._all_destroyed_and_idle()

    def _all_destroyed_and_idle(self) -> None:
        """The application destroys every stream left (done ones too: a no-op, or the unread
        bytes go) and the wire drains: nothing may stay held, reserved or waiting."""
        for flow in self.flows:
            flow.source.fail(flow.writer, StreamClosedError("closing"))
            if flow.reader is not None:
                flow.sink.fail(flow.reader, StreamClosedError("closing"))
        for _ in range(100):
            self.pair.flush()
            self._arrived()
            for flow in self.flows:
                if flow.reader is not None:
                    flow.sink.fail(flow.reader, StreamClosedError("closing"))
            if not any(self.pair.wires.values()):
                break
        for core in (self.pair.a, self.pair.b):
            stats = core.budget.statistics()
            assert (stats.held, stats.reserved, stats.waiting) == (0, 0, 0), stats
            assert not core.streams and not core.starved and not core.turn_waiters, core.statistics()
            assert not core.floor_due and not core.grown, (core.floor_due, core.grown)
            assert core.budget.floor_used == 0 and core.budget.floor_reserved == 0
            assert not core.turns.waiting, "the driver's stall checks go on with no debt"
        assert (self.process.held, self.process.reserved) == (0, 0), self.process.statistics()

    def _progress_marks(self) -> tuple[int, ...]:
        marks: list[int] = []
        for flow in self.flows:
            reader = flow.reader.activity if flow.reader is not None else -1
            marks += [flow.written, len(flow.received), flow.writer.activity, reader]
        return tuple(marks)


def _stream_ids(event: Outgoing) -> set[str]:
    ids: set[str] = set()
    placeholders.decode(list(event.args[1:]), lambda sid, _options: ids.add(sid))
    return ids


def _overtakes(item: object, ids: set[str]) -> bool:
    """``item`` is a write of one of ``ids``, or its end carrying a final size."""
    if not isinstance(item, Outgoing) or not item.args or item.args[0] not in ids:
        return False
    if item.event == wire.WRITE:
        return True
    return item.event == wire.END and len(item.args) > 1 and FINAL_SIZE_KEY in (item.args[1] or {})


FlowControl.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_flow_control = FlowControl.TestCase
