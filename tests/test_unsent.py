"""The meter of python-engineio's send queues (sio_stream.glue._unsent): what a queue holds,
counted through the queue classes' own ``_put`` / ``_get`` hooks, and the wake once it drained."""

from __future__ import annotations

import asyncio
import queue
from typing import Any

import pytest
from engineio import packet

from sio_stream.glue._unsent import Meter, meter_of, metered


def _packet(size: int) -> Any:
    return packet.Packet(packet.MESSAGE, data=b"x" * size)


@pytest.mark.parametrize("base", [asyncio.Queue, queue.Queue])
def test_a_metered_queue_counts_its_bytes_and_wakes_at_half(base: Any) -> None:
    q = metered(base)()
    meter = meter_of(q)
    assert isinstance(meter, Meter) and meter_of(base()) is None
    meter.limit = 1000
    for _ in range(4):
        q.put_nowait(_packet(300))
    q.put_nowait(None)  # python-engineio's end of the queue
    assert meter.full and meter.queued == 1200 + 16
    woken: list[int] = []
    meter.when_drained("sender", lambda: woken.append(meter.queued))
    q.get_nowait()
    assert not meter.full and woken == []  # 916 bytes: below the limit, above half of it
    q.get_nowait()
    assert woken == []  # 616 bytes: still above half
    q.get_nowait()
    assert woken == [316]
    q.get_nowait()
    q.get_nowait()
    assert woken == [316]  # once per registration
    assert meter.queued == 0 and q.qsize() == 0


def test_a_cancelled_waiter_is_not_called() -> None:
    meter = Meter(100)
    meter.added(_packet(200))
    called: list[bool] = []
    meter.when_drained("a", lambda: called.append(True))
    meter.cancel("a")
    meter.removed(_packet(200))
    assert called == [] and meter.queued == 0
