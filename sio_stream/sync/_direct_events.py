"""Wire events handed straight to sio_stream's handler, past python-socketio's generic dispatch.

For every event python-socketio's sync classes log a line (``logger.info``, a call even when
logging is off), go through ``_trigger_event`` (which the lifecycle hooks wrap in a
:class:`~sio_stream.glue._host.TriggerCall`, an object per event) and look the handler up in
four places. A download's client does that for every chunk (``$stream-write``), its server for
every credit (``$stream-read``), and the handler at the end only records input in the core.

:class:`DirectEvents` is the table the receive loop's wrappers (:mod:`sio_stream.sync._host`)
look at first: a wire event whose handler is still the one sio_stream registered is called
directly with the same arguments. Events that carry an ack id go the usual way (python-socketio
sends the ack from what the handler returns), and so does anything an application re-registered
under a wire event's name (its own handler is then the one called, as before). The only thing
skipped is python-socketio's "Received event" log line for these events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_ATTRIBUTE = "_sio_stream_direct_events"


class DirectEvents:
    """The wire handlers of one ``socketio.Server`` or ``socketio.Client``, per namespace."""

    __slots__ = ("_handlers", "_table")

    def __init__(self, handlers: dict[str, dict[str, Any]]) -> None:
        self._handlers = handlers  # python-socketio's own table: {namespace: {event: handler}}
        self._table: dict[tuple[str, str], tuple[Any, Callable[..., Any]]] = {}

    def add(self, namespace: str, event: str, registered: Any, direct: Callable[..., Any]) -> None:
        """``direct(peer, *args)`` handles ``event`` while python-socketio's handler for it is
        ``registered`` (the function sio_stream gave it)."""
        self._table[(namespace, event)] = (registered, direct)

    def dispatch(self, namespace: str, event: Any, ack_id: Any, peer: Any, args: list[Any]) -> bool:
        """Handle the event here and return True, or return False for python-socketio's path."""
        if ack_id is not None:
            return False
        entry = self._table.get((namespace, event))
        if entry is None:
            return False
        registered, direct = entry
        if self._handlers.get(namespace, {}).get(event) is not registered:
            return False  # replaced by the application since: its handler runs
        direct(peer, *args)
        return True


def direct_events(sio: Any) -> DirectEvents:
    """The :class:`DirectEvents` of ``sio`` (made on first use)."""
    table: DirectEvents | None = getattr(sio, _ATTRIBUTE, None)
    if table is None:
        table = DirectEvents(sio.handlers)
        setattr(sio, _ATTRIBUTE, table)
    return table
