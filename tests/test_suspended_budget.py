"""What a suspended session costs the process budget (``core/_budget.py`` with
``core/_resume.py``): it is not woken by room freed elsewhere (its peer could not use credit
before it comes back; a thousand vanished clients made every release wake each of them, and
their expiry quadratic), its debts are paid at the resume, and the cached fair level of the
process account always equals the level computed afresh."""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
from hypothesis import given, settings

from sio_stream.core._budget import Budget
from sio_stream.core._core import StreamCore
from sio_stream.core._options import StreamOptions
from tests.corepair import CorePair
from tests.test_session_resume_core import config, cut, resume


def fresh_fair_level(process: Budget) -> int:
    """:meth:`Budget.fair_level` computed from scratch (max-min share, one newcomer)."""
    members = sorted((c.used for c in process._members), reverse=True)
    room = process.limit - (process.used - sum(members))
    count = len(members)
    for used in members:
        if used * count <= room:
            break
        room -= used
        count -= 1
    return room // (count + 1)


def full_process() -> tuple[Budget, Budget, int]:
    """A process account that a hog has filled: nothing more fits until the hog lets go."""
    process = Budget(1 << 20)
    hog = Budget(1 << 20, process)
    hogged = 4096
    assert hog.reserve(hogged)
    process.limit = process.used  # full: nothing more fits
    return process, hog, hogged


def test_a_suspended_session_waits_for_no_room_and_is_paid_at_its_resume() -> None:
    process, hog, hogged = full_process()
    pair = CorePair(config(), config(process_budget=process))
    sender = StreamCore(StreamOptions())
    receiver = pair.open_stream(pair.a, sender)
    pair.b.start_reading(receiver)
    pair.flush()
    assert receiver.window is not None and receiver.window.outstanding == 0  # starved
    assert process.statistics().waiting == 1  # the reader's connection waits for room
    cut(pair)
    assert process.statistics().waiting == 0
    hog.release(reserved=hogged)
    process.limit = 1 << 20
    process.wake()
    assert receiver.window.outstanding == 0  # room freed elsewhere does not reach it
    resume(pair)
    assert receiver.window.outstanding > 0  # paid at the resume
    data = bytes(range(200))
    pair.a.write(sender, data)
    pair.a.end(sender)
    got = pair.read_to_end(pair.b, receiver, rounds=100)
    assert got == data


def test_a_live_session_is_paid_when_room_frees() -> None:
    """The same without the cut: the counterpart that shows the waiting above is real."""
    process, hog, hogged = full_process()
    pair = CorePair(config(), config(process_budget=process))
    sender = StreamCore(StreamOptions())
    receiver = pair.open_stream(pair.a, sender)
    pair.b.start_reading(receiver)
    pair.flush()
    assert receiver.window is not None and receiver.window.outstanding == 0
    hog.release(reserved=hogged)
    process.limit = 1 << 20
    process.wake()
    assert receiver.window.outstanding > 0


def test_cancelling_the_last_waiter_leaves_the_parent() -> None:
    process = Budget(1000)
    connection = Budget(500, process)
    connection.wait("a", lambda: None)
    connection.wait("b", lambda: None)
    assert process.statistics().waiting == 1
    connection.cancel("a")
    assert process.statistics().waiting == 1
    connection.cancel("b")
    assert process.statistics().waiting == 0


operations = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "arrive", "release", "retain", "join", "close", "limit"]),
        st.integers(0, 5),
        st.integers(1, 400),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_the_cached_fair_level_is_always_the_fresh_one(ops: list[tuple[str, int, int]]) -> None:
    process = Budget(2000)
    accounts = [Budget(1000, process) for _ in range(3)]
    reserved: dict[int, int] = {}
    for name, which, size in ops:
        account: Any = accounts[which % len(accounts)] if accounts else None
        if name == "join" or account is None:
            accounts.append(Budget(1000, process))
        elif name == "reserve" and account.reserve(size):
            reserved[id(account)] = reserved.get(id(account), 0) + size
        elif name == "arrive" and reserved.get(id(account)):
            account.arrive(reserved.pop(id(account)), size)
        elif name == "release":
            account.release(held=min(size, account.held))
        elif name == "retain":
            account.retain(size if account.retained < 1000 else -account.retained)
        elif name == "close":
            account.close()
            accounts.remove(account)
        elif name == "limit":
            process.limit = 1000 + size * 5
        assert process.fair_level() == fresh_fair_level(process)
