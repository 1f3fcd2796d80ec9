"""Every state a stream direction can be in, and every legal move, in one table.

A stream has two directions. The table maps ``(direction state, input)`` to the next state;
an input with no entry is illegal in that state and becomes a typed error in the caller
(local misuse or a remote protocol violation, depending on who sent the input).
"""

from __future__ import annotations

import enum


class ReadState(enum.Enum):
    IDLE = "idle"  # nobody has read yet: no credit granted
    READING = "reading"  # credit granted, chunks may arrive
    ENDED = "ended"  # no more chunks will arrive (buffered ones remain readable)
    FAILED = "failed"


class WriteState(enum.Enum):
    OPEN = "open"  # the application may write
    ENDING = "ending"  # end() called; buffered data still to flush before $stream-end
    ENDED = "ended"  # $stream-end queued
    FAILED = "failed"


class ReadInput(enum.Enum):
    OPEN = "open"  # the application started reading
    REMOTE_END = "remote end"  # a $stream-end arrived
    LOCAL_END = "local end"  # our writable side ended and half-open is off
    FAIL = "fail"


class WriteInput(enum.Enum):
    WRITE = "write"
    END = "end"
    FLUSHED = "flushed"  # the last buffered byte left; $stream-end goes out now
    #: A resumed session: the peer never got our $stream-end, so what it did not receive is
    #: flushed again, and the end follows it.
    RESEND = "resend"
    FAIL = "fail"


_READ_TABLE: dict[tuple[ReadState, ReadInput], ReadState] = {
    (ReadState.IDLE, ReadInput.OPEN): ReadState.READING,
    (ReadState.READING, ReadInput.OPEN): ReadState.READING,
    (ReadState.ENDED, ReadInput.OPEN): ReadState.ENDED,
    (ReadState.IDLE, ReadInput.REMOTE_END): ReadState.ENDED,
    (ReadState.READING, ReadInput.REMOTE_END): ReadState.ENDED,
    (ReadState.IDLE, ReadInput.LOCAL_END): ReadState.ENDED,
    (ReadState.READING, ReadInput.LOCAL_END): ReadState.ENDED,
    # A JavaScript peer echoes $stream-end when its side finishes; harmless once ended.
    (ReadState.ENDED, ReadInput.REMOTE_END): ReadState.ENDED,
    (ReadState.ENDED, ReadInput.LOCAL_END): ReadState.ENDED,
}

_WRITE_TABLE: dict[tuple[WriteState, WriteInput], WriteState] = {
    (WriteState.OPEN, WriteInput.WRITE): WriteState.OPEN,
    (WriteState.OPEN, WriteInput.END): WriteState.ENDING,
    (WriteState.ENDING, WriteInput.END): WriteState.ENDING,
    (WriteState.ENDED, WriteInput.END): WriteState.ENDED,
    (WriteState.ENDING, WriteInput.FLUSHED): WriteState.ENDED,
    (WriteState.ENDED, WriteInput.RESEND): WriteState.ENDING,
    (WriteState.ENDING, WriteInput.RESEND): WriteState.ENDING,
    (WriteState.OPEN, WriteInput.RESEND): WriteState.OPEN,
}

for _state in ReadState:
    _READ_TABLE[(_state, ReadInput.FAIL)] = ReadState.FAILED
for _wstate in WriteState:
    _WRITE_TABLE[(_wstate, WriteInput.FAIL)] = WriteState.FAILED


def next_read_state(state: ReadState, event: ReadInput) -> ReadState | None:
    """The read direction's next state, or ``None`` when ``event`` is illegal in ``state``."""
    return _READ_TABLE.get((state, event))


def next_write_state(state: WriteState, event: WriteInput) -> WriteState | None:
    """The write direction's next state, or ``None`` when ``event`` is illegal in ``state``."""
    return _WRITE_TABLE.get((state, event))
