"""The per-chunk cost of many streams on one connection, counted: what the budget's wake chain
and a reader that waits again cost per chunk, with 100 streams against one stream moving the
same chunks. Counts, not times: two cores back to back, and the budget alone."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sio_stream.core import _wire as wire
from sio_stream.core._budget import Budget
from sio_stream.core._core import CoreConfig, ProtocolCore
from tests.corepair import CorePair
from tests.test_turns import open_uploads, rounds_to_the_end

MiB = 1024 * 1024


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts of the budget's room checks and wakes, and of the reader's credit sizing."""
    counts: Counter[str] = Counter()
    for cls, name in ((Budget, "grantable"), (Budget, "_wake"), (ProtocolCore, "_credit_bytes")):
        real = getattr(cls, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):  # type: ignore[no-untyped-def]
            counts[_name] += 1
            counts[f"{_name}@{id(self)}"] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, counted)
    yield counts


def waiting_connections(process: Budget, count: int, woken: list[int]) -> list[Budget]:
    """``count`` connections, each with its window in flight and a waiter for a turn of half
    of it (so waiting on the process too)."""
    accounts = []
    for number in range(count):
        account = Budget(64 * MiB, process, window=4 * MiB)
        assert account.reserve(4 * MiB)
        account.wanted = 2 * MiB
        account.wait(number, lambda number=number: woken.append(number))
        accounts.append(account)
    return accounts


def test_room_freed_on_a_connection_checks_its_waiters_once(calls):
    """A connection whose waiter is short of room (a turn larger than what its window has)
    frees a little: its room is checked once, and the process's not at all while no other
    connection waits (before: the connection's twice and the process's once, as the process ran
    the connection's waiters again right after they ran). Another connection waiting on the
    process is still woken by that room, and room for the turn pays it."""
    process = Budget(1 << 30)
    woken: list[int] = []
    (alone,) = waiting_connections(process, 1, woken)
    calls.clear()
    alone.release(reserved=1024)  # less than the turn it waits for
    assert woken == []
    assert calls[f"grantable@{id(alone)}"] == 1
    assert calls[f"grantable@{id(process)}"] == 0

    process = Budget(1 << 30)
    first, second = waiting_connections(process, 2, woken)
    calls.clear()
    first.release(reserved=1024)
    assert woken == []
    assert calls[f"grantable@{id(first)}"] == 1
    assert calls[f"grantable@{id(process)}"] == 1  # on the way to the second connection
    assert calls[f"grantable@{id(second)}"] == 1  # the process passed the room on
    calls.clear()
    first.release(reserved=4 * MiB - 1024)  # its whole window: the turn fits now
    assert woken == [0]
    assert calls[f"grantable@{id(first)}"] == 1


amounts = st.integers(min_value=0, max_value=80 * MiB)


@given(
    connections=st.lists(
        st.tuples(amounts, amounts, amounts, st.integers(0, 8), st.one_of(st.none(), amounts)),
        min_size=1,
        max_size=4,
    ),
    limit=st.integers(min_value=MiB, max_value=200 * MiB),
)
def test_grantable_written_out_is_the_rule(connections, limit):
    """grantable() is written out for speed; it must equal the rule it states, in any state:
    free room less the floors not in use, within the fair share of a contended process and
    the connection window."""
    process = Budget(limit)
    accounts = []
    for held, reserved, retained, floors, window in connections:
        account = Budget(64 * MiB, process, window=window or None, floor=MiB, slots=8)
        account._add(held, reserved)
        account.retain(retained)
        account.floor_used = min(account.floor_pool, floors * MiB, held + reserved)
        account.floor_reserved = min(reserved, account.floor_used)
        accounts.append(account)
    for account in accounts:
        for window in (True, False):
            rule = min(account.free - (account.floor_pool - account.floor_used), account._fair_room())
            if window and account.window is not None:
                rule = min(rule, account.window - account.pooled)
            assert account.grantable(window) == max(0, rule)
        # The room under the window, from the room without it (one check for a turn's two questions).
        assert account.windowed(account.grantable(False)) == account.grantable(True)


def run_uploads(streams: int, chunks: int, calls: Counter[str]) -> tuple[int, dict[str, float]]:
    """``streams`` uploads sharing ``chunks`` full chunks, to the end; the reader's side waits
    again after each drain (as a driver's receive() does). Returns the chunks that crossed and
    the counts per chunk."""
    process = Budget(1 << 30)
    config = CoreConfig(process_budget=process, idle_timeout=None)
    pair = CorePair(config, config)
    readers = open_uploads(pair, streams, chunks * config.max_chunk // streams)
    calls.clear()
    writes = 0
    for crossed in rounds_to_the_end(pair, readers, 10 * chunks):
        writes += sum(1 for event, _ in crossed if event == wire.WRITE)
    names = ("grantable", "_wake", "_credit_bytes")
    return writes, {name: calls[name] / writes for name in names}


def test_per_chunk_budget_work_with_100_streams(calls):
    """100 uploads of 8 chunks against one of 800 (1,700 chunks against 1,601). Before the
    cuts the 100 streams' reader made 4.2 budget wakes, 9.4 room checks and 4.6 credit sizings
    per chunk (one stream: 2, 2 and 2.2): the process ran each connection's waiters again right
    after they ran, and every wait for data sized a floor credit for a window already open.
    Then 6.9 room checks and 3.9 sizings: a pass sized a stream for its turn, again for the
    turn's room and a third time for the room it waits for, a chunk consumed sized it for its
    window and again for the connection's, and a turn, a chunk arrived and a new debt each
    checked the room twice (under the window, then without it). Now 4.9 and 1.7: one sizing per
    stream a pass looks at and per chunk consumed, one room check per question."""
    one_writes, one = run_uploads(1, 1600, calls)
    many_writes, many = run_uploads(100, 1600, calls)
    assert one_writes >= 1600 and many_writes >= 1600
    assert one["_wake"] <= 2.05, one
    assert many["_wake"] <= 2.2, many  # a wake per chunk consumed and per chunk arrived short
    # A wake's, a chunk arrived's, a turn's, a consumed chunk's (the connection window's tuning)
    # and a new debt's: each undone cut adds 0.5 or more.
    assert many["grantable"] <= 5.2, many
    # No more sizings per chunk than one stream makes; each undone cut adds 0.5 or more.
    assert many["_credit_bytes"] <= min(1.85, one["_credit_bytes"]), (many, one)
