"""The sync python-socketio side: socketio.Server, socketio.Client and Flask-SocketIO.

Three things python-socketio's sync classes do not give streams, fixed once per socketio object:

* **Atomic sends.** A binary event is several engine.io messages; two threads sending at once
  interleave them and corrupt both events. Every ``_send_packet`` of the object (ours, the
  application's, python-socketio's acks) runs under one lock, made of the async mode's queue
  so that it parks green threads properly.
* **Ordered wire events.** The server runs each event in a new thread (``async_handlers``),
  and the client runs each engine.io message in a new thread, reassembling binary packets
  unlocked (python-socketio issue 436). Threads started in order may run in any order, so
  chunks could be reordered or their attachments mixed up. Stream wire events are therefore
  handled on the connection's receive loop, in arrival order (they never block: they only
  record input in the protocol core); application events still get a thread each, as before.
* **Lifecycle hooks**, as in the async glue (:class:`sio_stream.glue._host.TriggerCall`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import socketio

from .._errors import LocalProtocolError
from ..core import _wire as wire
from ..glue._host import Host, LifecycleHook, TriggerCall, fire, install_lifecycle
from ._direct_events import direct_events
from ._stream import LOCK, SEND_AFTER

#: Wire events handled in arrival order on the receive loop.
_INLINE = frozenset({wire.READ, wire.WRITE, wire.END, wire.ERROR, wire.HELLO})
_PATCHED_ATTRIBUTE = "_sio_stream_sync_patched"


def _flask_socketio(obj: Any) -> Any:
    """``obj`` if it is a ``flask_socketio.SocketIO``, else ``None`` (without importing Flask)."""
    for cls in type(obj).__mro__:
        if cls.__name__ == "SocketIO" and cls.__module__.startswith("flask_socketio"):
            return obj
    return None


class _QueueLock:
    """A lock that parks (green) threads with the async mode's own queue."""

    def __init__(self, create_queue: Callable[[], Any]) -> None:
        self._tokens = create_queue()
        self._tokens.put(None)

    def __enter__(self) -> None:
        self._tokens.get()

    def __exit__(self, *exc: Any) -> None:
        self._tokens.put(None)


def _patch(sio: Any, is_server: bool) -> None:
    if getattr(sio, _PATCHED_ATTRIBUTE, False):
        return
    setattr(sio, _PATCHED_ATTRIBUTE, True)
    send_lock = _QueueLock(sio.eio.create_queue)
    send_packet = sio._send_packet

    def locked_send_packet(*args: Any) -> Any:
        with send_lock:
            return send_packet(*args)

    sio._send_packet = locked_send_packet
    handle_event = sio._handle_event
    direct = direct_events(sio)  # see _direct_events.py
    if is_server:

        def server_handle_event(eio_sid: Any, namespace: Any, id: Any, data: Any) -> Any:
            if not (data and data[0] in _INLINE):
                return handle_event(eio_sid, namespace, id, data)
            namespace = namespace or "/"
            sid = sio.manager.sid_from_eio_sid(eio_sid, namespace)
            if (
                sid is not None
                and sio.manager.is_connected(sid, namespace)
                and not direct.dispatch(namespace, data[0], id, sid, data[1:])
            ):
                sio._handle_event_internal(sio, sid, eio_sid, data, namespace, id)
            return None

        sio._handle_event = server_handle_event
        return

    # The client: one engine.io message after the other on the read loop, and application
    # events each in a thread of their own, as the server does them.
    eio_trigger = sio.eio._trigger_event

    def eio_trigger_event(event: str, *args: Any, **kwargs: Any) -> Any:
        # Not a server's DISCONNECT packet (text starting with "1"): python-socketio handles it
        # by joining the read loop, which must then run in a thread of its own, as it used to.
        if event == "message" and not (args and isinstance(args[0], str) and args[0][:1] == "1"):
            kwargs["run_async"] = False
        return eio_trigger(event, *args, **kwargs)

    sio.eio._trigger_event = eio_trigger_event

    def client_handle_event(namespace: Any, id: Any, data: Any) -> Any:
        if data and data[0] in _INLINE:
            if direct.dispatch(namespace or "/", data[0], id, None, data[1:]):
                return None
            return handle_event(namespace, id, data)
        return sio.start_background_task(handle_event, namespace, id, data)

    sio._handle_event = client_handle_event


def _wrap_trigger_event(sio: Any, hooks: dict[str, LifecycleHook], is_server: bool) -> None:
    original = sio._trigger_event

    def trigger_event(event: str, namespace: str, *args: Any) -> Any:
        with TriggerCall(hooks, is_server, event, namespace, args) as call:
            return call.after(original(event, namespace, *args))

    sio._trigger_event = trigger_event


def _wrap_manager_connect(sio: Any, hooks: dict[str, LifecycleHook], is_server: bool) -> None:
    manager = sio.manager
    original = manager.connect

    def connect(sid: Any, namespace: str) -> Any:
        result = original(sid, namespace)
        fire(hooks, "connected", namespace, sid)
        return result

    manager.connect = connect


class SyncHost(Host):
    """A python-socketio ``Server`` or ``Client``, or a Flask-SocketIO ``SocketIO``, seen from
    sio_stream. With Flask-SocketIO, application events go through Flask-SocketIO's handler
    wrapper (request context, ``request.sid``, the session), and handlers get no sid. Wire
    events and lifecycle hooks run under the sync API's lock."""

    def __init__(self, sio: Any, namespace: str) -> None:
        self.flask = _flask_socketio(sio)
        if self.flask is not None:
            sio = self.flask.server
            if sio is None:
                raise LocalProtocolError(
                    "this flask_socketio.SocketIO has no server yet: call ss() after init_app(app)"
                )
        super().__init__(sio, namespace)
        _patch(self.sio, self.is_server)
        self.handlers_take_sid = self.is_server and self.flask is None

    @staticmethod
    def _check_kind(sio: Any) -> bool:
        if isinstance(sio, socketio.Server):
            if not sio.async_handlers:
                raise LocalProtocolError(ASYNC_HANDLERS_NEEDED)
            return True
        if isinstance(sio, socketio.Client):
            return False
        raise TypeError(
            "sio_stream.sync.ss() takes a socketio.Server, a socketio.Client or a "
            f"flask_socketio.SocketIO, not {type(sio).__name__}"
            + (
                " (for asyncio, use sio_stream.ss)"
                if isinstance(sio, (socketio.AsyncServer, socketio.AsyncClient))
                else ""
            )
        )

    def on(self, event: str, handler: Callable[..., Any]) -> None:
        if self.flask is not None and event == wire.STREAM:
            from flask import request

            def flask_handler(*args: Any) -> Any:
                return handler(request.sid, *args)  # type: ignore[attr-defined]

            self.flask.on_event(event, flask_handler, namespace=self.namespace)
            return
        if event == wire.STREAM:
            super().on(event, handler)
            return

        def locked(*args: Any) -> Any:
            # Wire events, on the receive loop: a chunk or credit they let go is emitted from
            # here (python-socketio's emits only queue), not handed to the sender task.
            with SEND_AFTER:
                return handler(*args)

        super().on(event, locked)
        registered = self.sio.handlers[self.namespace][event]  # locked, or the client's wrapper of it
        direct_events(self.sio).add(self.namespace, event, registered, locked)

    def on_lifecycle(self, hook: LifecycleHook) -> None:
        def locked(event: str, namespace: str, peer: Any) -> None:
            with LOCK:
                hook(event, namespace, peer)

        install_lifecycle(
            self.sio, self.namespace, locked, self.is_server, _wrap_trigger_event, _wrap_manager_connect
        )

    def emitter(self, peer: Any) -> Callable[[str, tuple[Any, ...], Any], Any]:
        """A blocking emit function bound to one peer (``ignore_queue`` as in the async glue)."""
        sio, namespace = self.sio, self.namespace
        if self.is_server:

            def emit_to(event: str, args: tuple[Any, ...], callback: Any) -> None:
                sio.emit(event, args, to=peer, namespace=namespace, callback=callback, ignore_queue=True)

            return emit_to

        def emit(event: str, args: tuple[Any, ...], callback: Any) -> None:
            sio.emit(event, args, namespace=namespace, callback=callback)

        return emit

    def create_event(self) -> Any:
        return self.sio.eio.create_event()


ASYNC_HANDLERS_NEEDED = (
    "sio_stream needs socketio.Server(async_handlers=True) (the default): with "
    "async_handlers=False python-socketio runs one handler at a time, so a handler reading a "
    "stream would wait forever for data queued behind it. (Flask-SocketIO's test client sets "
    "async_handlers=False: test streams with a real client, as sio_stream's own tests do.)"
)
