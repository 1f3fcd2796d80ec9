"""One engine.io server's own copy of its async-mode driver table, with one entry wrapped.

python-engineio keeps one table of drivers per async mode (``eio._async``: ``websocket``,
``translate_request``, ...), shared by every server of that mode. The fixes ``ss()`` applies to a
server (no websocket compression, whole frames, a fast unmask, whole POST bodies) each give that
server a copy of the table whose entry wraps the original: nothing global changes, other servers
in the process are untouched, and a python-engineio whose table looks otherwise is left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def wrap_driver(
    eio: Any, mode: str, entry: str, wrap: Callable[[Callable[..., Any]], Callable[..., Any]], marker: str
) -> bool:
    """Give engine.io server ``eio``, in async mode ``mode``, a driver table whose ``entry`` is
    ``wrap(original)``, once (``marker`` names the attribute that records it). Returns whether
    the server has it now: False in another mode, or when the table has no such entry."""
    if getattr(eio, marker, False):
        return True
    if getattr(eio, "async_mode", None) != mode:
        return False
    drivers = getattr(eio, "_async", None)
    if not isinstance(drivers, Mapping) or drivers.get(entry) is None:
        return False
    eio._async = {**drivers, entry: wrap(drivers[entry])}
    setattr(eio, marker, True)
    return True
