"""A stream's writer beside the code that waits for its peer, with no exception left behind.

Writing a stream and waiting for the peer's answer are two waits at once: the peer answers only
once it has read, and it reads only what is written. Two tasks do that; the helpers here own
both ends of them, so a failure of either is raised or logged, never left in a task for asyncio
to report as "Task exception was never retrieved".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from .._errors import StreamBrokenError, StreamError

logger = logging.getLogger("sio_stream")

T = TypeVar("T")

# start_writer's tasks, held until they end: the event loop keeps only weak references.
_running: set[asyncio.Task[None]] = set()


def _retrieve(task: asyncio.Future[Any]) -> None:
    # Mark the outcome as seen: call_writing decides which error to raise and drops the other.
    if not task.cancelled():
        task.exception()


async def call_writing(call: Awaitable[T], writer: Awaitable[Any]) -> T:
    """Run ``call`` (a ``StreamSocket.call()``) and ``writer`` together; the contract is the one
    :meth:`sio_stream.StreamSocket.call` states for its ``writer`` argument."""
    call_task = asyncio.ensure_future(call)  # first: the event is queued before any data
    write_task = asyncio.ensure_future(writer)
    for task in (call_task, write_task):
        task.add_done_callback(_retrieve)
    try:
        await asyncio.wait((call_task, write_task), return_when=asyncio.FIRST_EXCEPTION)
        if (
            write_task.done()
            and not write_task.cancelled()
            and not isinstance(write_task.exception(), StreamBrokenError | None)
        ):
            await write_task  # a local failure (the file, the writer's code): it is the cause
        # The peer or the connection broke the stream, or nothing failed: the call's outcome
        # says why (the handler's refusal, the dropped connection), so it comes first.
        result = await call_task
        await write_task
        return result
    finally:
        left = [task for task in (call_task, write_task) if not task.done()]
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left)


def start_writer(writer: Awaitable[Any]) -> asyncio.Task[None]:
    """Run ``writer`` (for example ``send_file(stream, path)``) in a task of its own, for a
    handler that must return before the writing ends: it returns the stream in its ack, or its
    peer starts reading only once it has the ack.

    The task is held until it ends, and its failure is logged on the ``sio_stream`` logger
    instead of being left in the task (where asyncio would print "Task exception was never
    retrieved"): a :class:`~sio_stream.StreamError` (the peer left or failed the stream) as
    one warning line, anything else (a missing file, a bug) as an error with its traceback.
    The reader learns of either from the stream itself (``send_file`` destroys the stream when
    it fails). Cancelling the returned task stops the writer (and destroys the stream, as
    ``send_file`` does when cancelled); short of that, the task ends without an exception.

    Raises ``RuntimeError`` when no event loop is running.
    """
    task = asyncio.get_running_loop().create_task(_logged(writer))
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task


async def _logged(writer: Awaitable[Any]) -> None:
    try:
        await writer
    except StreamError as exc:
        logger.warning("sio_stream: writer stopped: %s", exc)
    except Exception:
        logger.exception("sio_stream: writer failed")
