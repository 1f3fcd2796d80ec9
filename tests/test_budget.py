"""The memory accounts of ``_budget.py``: the invariant, the three verbs, waiters, fairness."""

from __future__ import annotations

import gc

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from sio_stream.core._budget import Budget, Holding


def test_reserve_arrive_release_keep_held_plus_reserved_within_the_limit():
    process = Budget(1000)
    conn = Budget(600, process)
    assert conn.reserve(400) and not conn.reserve(300)
    assert (conn.held, conn.reserved, process.reserved) == (0, 400, 400)
    assert conn.arrive(100, 150)  # 50 over its reservation, and there is room for it
    assert (conn.held, conn.reserved) == (150, 300)
    assert not conn.arrive(100, 400)  # 300 over, 250 free: refused, the reservation is gone
    assert (conn.held, conn.reserved, conn.free) == (150, 200, 250)
    conn.release(held=150, reserved=200)
    assert (conn.used, process.used) == (0, 0)


def test_the_parent_bounds_every_child_and_the_window_bounds_credit():
    process = Budget(1000)
    a, b = Budget(400, process), Budget(400, process, window=100)
    assert a.reserve(400) and b.grantable() == 100
    assert not b.reserve(101) and b.reserve(100)
    assert process.used == 500
    # One connection alone never takes the last quarter of its process: room for newcomers.
    small = Budget(500)
    alone = Budget(1000, small)
    assert alone.grantable() == 375 and alone.reserve(375) and alone.grantable() == 0
    assert not alone.arrive(0, 1)  # not as excess either


def test_waiters_run_in_fifo_order_when_room_frees_and_across_connections():
    process = Budget(300)
    a, b = Budget(300, process), Budget(300, process)
    assert a.reserve(225)
    calls: list[str] = []
    b.wait("first", lambda: calls.append("first"))
    b.wait("second", lambda: calls.append("second"))
    b.wait("first", lambda: calls.append("again"))  # keeps its place, not added twice
    assert calls == []
    a.release(reserved=10)  # room in the process: b's waiters run, oldest first
    assert calls == ["first", "second"]


def test_fairness_a_connection_over_its_share_of_a_contended_process_gets_no_credit():
    process = Budget(1000)
    hog, modest = Budget(1000, process), Budget(1000, process)
    assert hog.grantable() == 750  # anything up to the contention line (3/4)
    assert hog.reserve(700) and hog.arrive(0, 50)  # 750 in use
    # Beyond the line, the max-min level: the hog keeps what it holds and gets nothing more;
    # the rest is shared by the other connection and a newcomer.
    assert hog.grantable() == 0
    assert modest.grantable() == 125 and modest.reserve(125)
    assert not hog.arrive(0, 1)


def test_close_leaves_the_parent_but_keeps_held_bytes_counted_until_released():
    process = Budget(1000)
    conn = Budget(500, process)
    holding = Holding(conn)
    assert holding.reserve(100) and holding.arrive(1, 1, 80)
    conn.close()
    conn.close()  # idempotent
    assert process.statistics().accounts == 0 and process.held == 80
    holding.take(30)
    assert process.held == 50
    holding.drop()  # the stream was garbage-collected
    assert (process.used, conn.used) == (0, 0)


def test_a_holding_is_released_when_its_owner_is_garbage_collected():
    import weakref

    class Owner:
        pass

    process = Budget(1000)
    owner = Owner()
    holding = Holding(Budget(500, process))
    weakref.finalize(owner, holding.drop)
    assert holding.reserve(200) and holding.arrive(1, 2, 150)
    del owner
    gc.collect()
    assert process.used == 0


def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        Budget(0)
    with pytest.raises(ValueError):
        Budget(10, window=0)


ops = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "arrive", "take", "release"]), st.integers(0, 3), st.integers(0, 400)
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_no_sequence_of_operations_breaks_the_invariant(sequence):
    process = Budget(1000)
    conns = [Budget(600, process, window=400) for _ in range(2)]
    holdings = [Holding(conns[i % 2]) for i in range(4)]
    for op, index, size in sequence:
        holding = holdings[index]
        if op == "reserve":
            holding.reserve(size)
        elif op == "arrive" and holding.reserved:
            if not holding.arrive(1, 2, size):
                holding.release()
        elif op == "take":
            holding.take(size)
        else:
            holding.release()
        for account in (*conns, process):
            assert account.held >= 0 and account.reserved >= 0
            assert account.held + account.reserved <= account.limit
        assert process.held == sum(c.held for c in conns)
        assert process.reserved == sum(c.reserved for c in conns)
    for holding in holdings:
        holding.release()
    assert process.used == 0


def test_a_newcomer_keeps_room_however_much_the_hogs_took_before_contention():
    process = Budget(1600)
    hogs = [Budget(600, process) for _ in range(4)]
    honest = Budget(600, process)
    for hog in hogs:  # each takes all it can, in turn
        while hog.reserve(10):
            pass
    # Two hogs filled 1200 (the contention line) first; the other two got their max-min level,
    # and the same level is still there for the newcomer.
    assert [h.used for h in hogs] == [600, 600, 100, 100]
    assert honest.grantable() == 100


def test_a_floor_is_paid_while_stalled_readers_hold_the_connections_fair_share():
    """The floors' fairness rule counted a connection's floors against the process's max-min
    level, which falls to nothing when stalled readers hold the rest: a reading stream that went
    dry was then refused its floor for good (nothing else freed room to wake it)."""
    process = Budget(300 * 1024)
    Budget(64 * 1024, process)  # a connection that holds nothing (a writer's side)
    big = Budget(256 * 1024, process)
    conn = Budget(100 * 1024, process, floor=1024, slots=4)
    stalled = [Holding(conn), Holding(conn)]
    for holding in stalled:
        assert holding.reserve(1024)
        assert holding.arrive(1, 1, 1024)
    conn._add(92 * 1024, 0)  # pooled bytes the stalled readers never took
    big._add(process.limit - process.used - 5 * 1024, 0)
    assert 0 < process.free <= 5 * 1024
    reading = Holding(conn)
    assert reading.reserve(1024)  # its floor, though the process is contended
    assert process.used <= process.limit and conn.used <= conn.limit


def test_floors_full_of_held_bytes_do_not_let_the_connection_window_overshoot():
    """L1: pooled credit was counted as ``reserved - floor_used``, and floor_used counts held
    bytes too: each stream holding its floor's worth let the pool hand out that much more than
    the connection window."""
    process = Budget(1 << 30)
    conn = Budget(1 << 20, process, window=4096, floor=1024, slots=4)
    first, second = Holding(conn), Holding(conn)
    for holding in (first, second):  # each floor now full of held bytes
        assert holding.reserve(1024) and holding.arrive(1, 1, 1024)
    assert first.reserve(4096)  # the whole window, from the pool
    assert conn.pooled == 4096
    assert not second.reserve(1024)  # no floor room left, and the window is spent
    assert conn.pooled <= conn.window


def test_an_arrival_wakes_waiters_only_once_the_holding_is_counted():
    """L3: Holding.arrive let its account wake the waiters before adding the arrived bytes to
    its own count: a waiter then saw the stream's floor as free while held bytes filled it."""
    process = Budget(1 << 30)
    conn = Budget(1 << 20, process, floor=1024, slots=4)
    holding = Holding(conn)
    assert holding.reserve(4096)
    seen: list[tuple[int, int]] = []
    conn.wait("waiter", lambda: seen.append((holding.held, holding.floor_room)))
    assert holding.arrive(1, 1, 100)  # less than reserved: room freed, the waiter runs
    assert seen == [(100, 1024 - 100)]


def test_an_oversized_chunk_leaves_other_streams_floors_alone():
    """M1: a chunk larger than its credit (a JavaScript writer's) had to fit only in the free
    room, which includes the floors other streams do not use yet; it may now use only the pool
    and its own floor, so a reading stream's floor credit still fits afterwards."""
    process = Budget(1 << 30)
    conn = Budget(16 * 1024, process, floor=1024, slots=8)  # 8 KiB of floors, 8 KiB of pool
    big, reader = Holding(conn), Holding(conn)
    assert big.reserve(1024)
    assert not big.arrive(1, 1, 12 * 1024)  # fits in free (16 KiB), not beside the floors
    assert big.arrive(0, 0, 8 * 1024)  # the pool and its own floor: accepted
    assert reader.reserve(1024)  # the other stream's floor is still there
    assert conn.used <= conn.limit
