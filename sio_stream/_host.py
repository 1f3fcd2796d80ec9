"""The python-socketio side: what differs between an AsyncServer and an AsyncClient.

Servers address a peer by ``sid`` and pass it first to handlers; clients have one peer and
pass no sid. :class:`Host` hides that, so :mod:`sio_stream._socket` is written once.

Connection lifetime is observed by wrapping the instance's ``_trigger_event``: it is the one
place python-socketio reports every ``connect``/``disconnect``, whether the application
registered plain handlers (before or after us) or a class-based namespace, and wrapping it
leaves all of those working. Each wrapper is installed once per socketio object.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from ._errors import LocalProtocolError

#: Called with ``(event, namespace, peer key)`` before the application's handlers run.
LifecycleHook = Callable[[str, str, Any], None]

# Per-socketio-object state lives on the object itself (a reference cycle the garbage
# collector frees with it), never in a module-level map that would keep every server alive.
_HOOKS_ATTRIBUTE = "_sio_stream_lifecycle_hooks"


def _install_lifecycle(sio: Any, namespace: str, hook: LifecycleHook, is_server: bool) -> None:
    hooks: dict[str, LifecycleHook] | None = getattr(sio, _HOOKS_ATTRIBUTE, None)
    if hooks is None:
        hooks = {}
        setattr(sio, _HOOKS_ATTRIBUTE, hooks)
        original = sio._trigger_event

        async def trigger_event(event: str, namespace: str, *args: Any) -> Any:
            # Before the application's handler runs: a disconnect fails the streams first (so
            # the handler sees them failed); a client's connect starts a fresh connection
            # record that the handler may already use to emit streams.
            if event == "disconnect" or (event == "connect" and not is_server):
                hook_fn = hooks.get(namespace or "/")
                if hook_fn is not None:
                    hook_fn(event, namespace or "/", args[0] if is_server and args else None)
            return await original(event, namespace, *args)

        sio._trigger_event = trigger_event
    hooks[namespace] = hook


class Host:
    """A python-socketio AsyncServer or AsyncClient, seen from sio_stream."""

    def __init__(self, sio: Any, namespace: str) -> None:
        if isinstance(sio, socketio.AsyncServer):
            self.is_server = True
            if not sio.async_handlers:
                raise LocalProtocolError(
                    "sio_stream needs AsyncServer(async_handlers=True) (the default): with "
                    "async_handlers=False python-socketio runs one handler at a time, so a "
                    "handler reading a stream would wait forever for data queued behind it"
                )
        elif isinstance(sio, socketio.AsyncClient):
            self.is_server = False
        else:
            raise TypeError(
                f"ss() takes a socketio.AsyncServer or socketio.AsyncClient, not {type(sio).__name__}"
            )
        self.sio = sio
        self.namespace = namespace

    def on(self, event: str, handler: Callable[..., Any]) -> None:
        """Register ``handler(peer, *args)``: ``peer`` is the sid on a server, ``None`` on a client."""
        if self.is_server:
            self.sio.on(event, handler, namespace=self.namespace)
        elif inspect.iscoroutinefunction(handler):

            async def client_coroutine(*args: Any) -> Any:
                return await handler(None, *args)

            self.sio.on(event, client_coroutine, namespace=self.namespace)
        else:

            def client_handler(*args: Any) -> Any:
                return handler(None, *args)

            self.sio.on(event, client_handler, namespace=self.namespace)

    def on_lifecycle(self, hook: LifecycleHook) -> None:
        _install_lifecycle(self.sio, self.namespace, hook, self.is_server)

    def emitter(self, peer: Any) -> Callable[[str, tuple[Any, ...], Any], Awaitable[None]]:
        """An emit function bound to one peer. Every internal emit bypasses any message-queue
        manager (``ignore_queue``): stream traffic belongs to this process's connection."""
        sio, namespace = self.sio, self.namespace
        if self.is_server:

            async def emit_to(event: str, args: tuple[Any, ...], callback: Any) -> None:
                await sio.emit(
                    event, args, to=peer, namespace=namespace, callback=callback, ignore_queue=True
                )

            return emit_to

        async def emit(event: str, args: tuple[Any, ...], callback: Any) -> None:
            await sio.emit(event, args, namespace=namespace, callback=callback)

        return emit

    def is_connected(self, peer: Any) -> bool:
        """False for a server sid that has left (or is leaving) this namespace; a client's one
        connection is replaced on reconnect, so it always counts as connected."""
        if not self.is_server:
            return True
        return bool(self.sio.manager.is_connected(peer, self.namespace))

    def is_live(self, peer: Any) -> bool:
        """True while the Socket.IO connection to ``peer`` is really up (after a failed emit)."""
        if self.is_server:
            return bool(self.sio.manager.is_connected(peer, self.namespace))
        return bool(self.sio.connected) and self.namespace in self.sio.namespaces

    def check_peer(self, peer: Any) -> None:
        """Raise :class:`LocalProtocolError` unless ``peer`` is connected to this process."""
        if self.is_server:
            if peer is None:
                raise LocalProtocolError("a server emits streams to one client: pass to=sid")
            manager = self.sio.manager
            if isinstance(peer, str) and manager.eio_sid_from_sid(peer, self.namespace) is not None:
                return
            # Say what `to=` named: a room of this namespace (every sid is a room too, but a
            # connected sid returned above), something shaped like python-engineio's sids
            # (20 URL-safe base64 characters), or anything else.
            if isinstance(peer, str) and peer in manager.rooms.get(self.namespace, {}):
                raise LocalProtocolError(
                    f"{peer!r} is a room: a stream goes to one client, and rooms are not supported "
                    "yet; emit to each client of the room (to=sid), with a stream each"
                )
            if (
                isinstance(peer, str)
                and len(peer) == 20
                and peer.isascii()
                and peer.replace("-", "").replace("_", "").isalnum()
            ):
                raise LocalProtocolError(
                    f"client {peer!r} is not connected to namespace {self.namespace!r} in this "
                    "process (it left, or it is connected to another process or namespace)"
                )
            raise LocalProtocolError(
                f"to={peer!r} is neither a client connected to namespace {self.namespace!r} in this "
                "process nor a room; a stream goes to one client: pass to=sid (rooms are not supported yet)"
            )
        else:
            if peer is not None:
                raise LocalProtocolError("a client emits to its server: do not pass to=")
            if self.namespace not in self.sio.namespaces:
                raise LocalProtocolError(f"the client is not connected to namespace {self.namespace!r}")
