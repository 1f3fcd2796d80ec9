"""The fan-out's policy alone (sio_stream.glue._fanout), with no connection: sub-streams that are
never sent hold what is queued on them, and a test takes bytes off one as its recipient's
sender would, so every step of the ``max_lag`` policy is chosen by the test."""

from __future__ import annotations

import pytest

from sio_stream import InvalidOptionError, StreamBrokenError
from sio_stream.core._core import ProtocolCore
from sio_stream.glue._fanout import FanoutLogic, check_max_lag
from sio_stream.sync._stream import IOStream, create_stream

KiB = 1024
#: Above a sub-stream's high-water mark (256 KiB) in one chunk.
CHUNK = b"x" * 300 * KiB


class Logic(FanoutLogic):
    def __init__(self, max_lag: int | None, recipients: int) -> None:
        super().__init__(create_stream(), max_lag, IOStream)
        self.core = ProtocolCore()
        self.core.attach(self.source._core)
        self.recipients = [self.sub_stream(sid) for sid in range(recipients)]

    def _start_relay(self) -> None:
        raise AssertionError("not a relay")


def sent(sub: IOStream, size: int = len(CHUNK)) -> None:
    """``sub``'s recipient took ``size`` bytes (its connection sent them)."""
    sub._core.pending.take(size)


def test_without_max_lag_the_writer_waits_for_the_slowest() -> None:
    logic = Logic(None, 3)
    a, b, c = logic.recipients
    assert logic.offer(CHUNK) == [a, b, c]
    sent(a)
    sent(b)
    assert logic.blocked() == [a, b, c]  # c is still behind: nobody is dropped
    sent(c)
    assert logic.blocked() == []
    assert all(sub.error is None for sub in logic.recipients)


def test_with_max_lag_the_fastest_sets_the_pace_and_laggards_fail() -> None:
    logic = Logic(2 * len(CHUNK), 3)
    a, b, c = logic.recipients
    assert logic.offer(CHUNK) == [a, b, c]
    sent(a)
    assert logic.blocked() == []  # a is within its mark: go on
    assert logic.offer(CHUNK) == [a, b, c]  # b and c hold 2 chunks: at max_lag, not beyond
    sent(a)
    sent(b)
    # c, 3 chunks behind, fails with the reason; the writer waits for a (or b) alone.
    assert logic.offer(CHUNK) == [a, b]
    assert c.error is not None and "fell behind by 921600 bytes (max_lag 614400)" in c.error.message
    sent(a)
    assert logic.blocked() == []
    assert logic.source.error is None


def test_every_recipient_leaving_fails_the_source() -> None:
    logic = Logic(None, 2)
    a, b = logic.recipients
    assert logic.offer(CHUNK) == [a, b]
    a.destroy("gone")
    assert logic.blocked() == [b]
    b.destroy("gone")
    assert logic.blocked() == []
    with pytest.raises(StreamBrokenError, match="every recipient left"):
        logic.source.write(b"more", timeout=1)


def test_a_max_lag_below_a_chunk_drops_everyone_instead_of_waiting_forever() -> None:
    logic = Logic(1000, 2)
    assert logic.offer(CHUNK) == []
    assert all("fell behind" in str(sub.error) for sub in logic.recipients)
    assert logic.source.error is not None and "every recipient left" in logic.source.error.message


def test_an_end_or_an_error_of_the_source_reaches_every_live_recipient() -> None:
    logic = Logic(None, 2)
    a, b = logic.recipients
    b.destroy("gone")
    logic.fail_all("the writer broke")
    assert a.error is not None and a.error.message == "the writer broke"
    assert b.error is not None and b.error.message == "gone"


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "10"])
def test_max_lag_must_be_a_positive_integer(value: object) -> None:
    with pytest.raises(InvalidOptionError, match="max_lag must be a positive integer"):
        check_max_lag(value)
    check_max_lag(None)
    check_max_lag(1)
