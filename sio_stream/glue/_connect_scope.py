"""Which task is running a server's ``connect`` handler right now.

python-socketio sends the CONNECT packet only after the application's connect handler returns
(``always_connect=False``, the default). Streams emitted from the handler are queued and go
out after that packet; but a task that waits *inside the handler* for the peer (an ack, a
read, a write beyond the high-water mark, ``end()``) would wait for a packet that cannot be
sent before it returns. This module lets those waits recognise the situation and fail at
once with advice instead of hanging.

A context variable alone would not do: tasks started by the handler inherit its context, and
they may wait (they run after the handler returns). So the scope records the handler's task,
or under the sync API (no event loop) its thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

_scope: contextvars.ContextVar[tuple[Any, Any] | None] = contextvars.ContextVar(
    "sio_stream_connect_scope", default=None
)

#: What to do instead, for every error raised from a wait inside a connect handler.
ADVICE = (
    "python-socketio sends the CONNECT packet only after the connect handler returns, so the "
    "client cannot answer before then: emit the stream and return, and do the rest in a task "
    "(asyncio.create_task(...)) or in a handler of a later event"
)


def _runner() -> Any:
    """The asyncio task running now, or outside an event loop the (green) thread."""
    try:
        return asyncio.current_task()
    except RuntimeError:
        return threading.get_ident()


def enter(sid: Any) -> contextvars.Token[tuple[Any, Any] | None]:
    """The current task (or thread) starts running the connect handler of ``sid``."""
    return _scope.set((_runner(), sid))


def leave(token: contextvars.Token[tuple[Any, Any] | None]) -> None:
    _scope.reset(token)


def inside_connect_handler() -> bool:
    """True when the calling task (or thread) is the one running a server's connect handler."""
    scope = _scope.get()
    return scope is not None and scope[0] == _runner()
