"""When a reader reports what it consumed before its quarter-window batch is due (negotiated
``consumed``): a writer's upload progress (what it reports as accepted) moves only with the
reader's ``$stream-read`` reports, absolute limits being consumed offset + window.

Toward a sio_stream writer a reader gives credit back in quarter-window batches (see
:mod:`sio_stream.core._reading`). A quarter of a large window is a coarse progress step: with
16 MiB of initial credit (negotiated ``initial-credit``) it is 4 MiB, and a stream that fits in
the offer reported little or nothing before its end.
"""

from __future__ import annotations

from ._streamcore import StreamCore

#: Bytes a reader consumes at most before it reports them toward a writer that counts its
#: progress from our ``consumed`` reports (see :func:`progress_due`).
PROGRESS_STEP = 1024 * 1024


def progress_due(stream: StreamCore) -> bool:
    """Report ``stream``'s consumption now with the credit it gives back, though the quarter
    window is not due: a writer's progress moves only with our reads, and a quarter of a large
    window (16 MiB of initial credit: 4 MiB) left a stream that fits in it with little to show
    before its end. The step is 1 MiB or an eighth of the window, whichever is less, and never
    below two chunks, so that a steady stream still sends no read per chunk (a window of eight
    chunks or less keeps its quarter batches as they were)."""
    assert stream.window is not None
    chunk = max(1, stream.credit_size)
    return stream.owed_reads >= max(2, min(PROGRESS_STEP // chunk, stream.window.current // 8))
