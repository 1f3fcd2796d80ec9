"""The python-socketio side: what differs between an AsyncServer and an AsyncClient.

Servers address a peer by ``sid`` and pass it first to handlers; clients have one peer and
pass no sid. :class:`Host` hides that, so :mod:`sio_stream.aio._socket` is written once.

Connection lifetime is observed by wrapping the instance's ``_trigger_event``: it is the one
place python-socketio reports every ``connect``/``disconnect``, whether the application
registered plain handlers (before or after us) or a class-based namespace, and wrapping it
leaves all of those working. Each wrapper is installed once per socketio object.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import socketio

from .._errors import LocalProtocolError
from . import _connect_scope as connect_scope
from ._unsent import Meter, meter_of

#: Called with ``(event, namespace, peer key)`` before the application's handlers run.
LifecycleHook = Callable[[str, str, Any], None]

#: python-socketio's disconnect reasons for a transport that failed (python-engineio's
#: ``reason`` values): the hooks hear ``"dropped"`` for them, ``"disconnect"`` for the others
#: (a deliberate disconnect by either side, or a reason this version does not know).
DROPPED_REASONS = frozenset({"transport close", "transport error", "ping timeout"})

# Per-socketio-object state lives on the object itself (a reference cycle the garbage
# collector frees with it), never in a module-level map that would keep every server alive.
_HOOKS_ATTRIBUTE = "_sio_stream_lifecycle_hooks"


#: Wraps a socketio object's ``_trigger_event`` (or its manager's ``connect``) with the hooks.
Wrapper = Callable[[Any, dict[str, LifecycleHook], bool], None]


def install_lifecycle(
    sio: Any,
    namespace: str,
    hook: LifecycleHook,
    is_server: bool,
    wrap_trigger: Wrapper,
    wrap_connect: Wrapper,
) -> None:
    """Call ``hook`` for ``namespace``'s lifecycle events of ``sio``, wrapping it once with the
    driver's ``wrap_trigger`` (around :class:`TriggerCall`) and, on a server, ``wrap_connect``
    (which fires ``"connected"`` after the manager's ``connect``)."""
    hooks: dict[str, LifecycleHook] | None = getattr(sio, _HOOKS_ATTRIBUTE, None)
    if hooks is None:
        hooks = {}
        setattr(sio, _HOOKS_ATTRIBUTE, hooks)
        wrap_trigger(sio, hooks, is_server)
        if is_server:
            wrap_connect(sio, hooks, is_server)
            _wrap_shutdown(sio, hooks)
    hooks[namespace] = hook


def _wrap_shutdown(sio: Any, hooks: dict[str, LifecycleHook]) -> None:
    """Fire ``"shutdown"`` in every namespace when the application calls the server's
    ``shutdown()`` (python-socketio's way to say the server stops), before it runs: the server
    sees its clients' transports close next, which must not suspend their sessions. Either
    driver: ``AsyncServer.shutdown`` is a coroutine function, ``Server.shutdown`` is not."""
    original = sio.shutdown

    def stopping() -> None:
        for namespace in list(hooks):
            fire(hooks, "shutdown", namespace, None)

    if inspect.iscoroutinefunction(original):

        async def shutdown() -> Any:
            stopping()
            return await original()

        sio.shutdown = shutdown
    else:

        def sync_shutdown() -> Any:
            stopping()
            return original()

        sio.shutdown = sync_shutdown


def fire(hooks: dict[str, LifecycleHook], event: str, namespace: str | None, peer: Any) -> None:
    hook_fn = hooks.get(namespace or "/")
    if hook_fn is not None:
        hook_fn(event, namespace or "/", peer)


class TriggerCall:
    """What a wrapped ``_trigger_event`` does around the original call, whichever driver:
    ``with TriggerCall(...) as call: return call.after(original(...))``."""

    def __init__(
        self,
        hooks: dict[str, LifecycleHook],
        is_server: bool,
        event: str,
        namespace: str,
        args: tuple[Any, ...],
    ) -> None:
        # Before the application's handler runs: a disconnect fails the streams first (so
        # the handler sees them failed); a client's connect starts a fresh connection
        # record that the handler may already use to emit streams.
        if event == "disconnect":
            reason = args[1 if is_server else 0] if len(args) > (1 if is_server else 0) else None
            dropped = isinstance(reason, str) and reason in DROPPED_REASONS
            fire(hooks, "dropped" if dropped else event, namespace, args[0] if is_server and args else None)
        elif event == "connect" and not is_server:
            fire(hooks, event, namespace, None)
        self._hooks = hooks
        self._namespace = namespace
        # A server's connect handler runs before python-socketio sends the CONNECT packet:
        # remember which task runs it (streams emitted now wait for the CONNECT, and waiting
        # on the peer from this very task could never end), and release what the handler
        # queued if it refuses the connection.
        self._sid = args[0] if event == "connect" and is_server and args else None
        self._token: Any = None

    def __enter__(self) -> TriggerCall:
        if self._sid is not None:
            self._token = connect_scope.enter(self._sid)
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if self._sid is None:
            return
        connect_scope.leave(self._token)
        # A TypeError: python-socketio calls again with the legacy signature (no auth argument).
        if exc is not None and not isinstance(exc, TypeError):
            fire(self._hooks, "refused", self._namespace, self._sid)

    def after(self, result: Any) -> Any:
        if self._sid is not None and result is False:
            fire(self._hooks, "refused", self._namespace, self._sid)
        return result


def _wrap_trigger_event(sio: Any, hooks: dict[str, LifecycleHook], is_server: bool) -> None:
    original = sio._trigger_event

    async def trigger_event(event: str, namespace: str, *args: Any) -> Any:
        with TriggerCall(hooks, is_server, event, namespace, args) as call:
            return call.after(await original(event, namespace, *args))

    sio._trigger_event = trigger_event


def _wrap_manager_connect(sio: Any, hooks: dict[str, LifecycleHook], is_server: bool) -> None:
    # python-socketio marks a client connected (manager.connect) right after it sent the
    # CONNECT packet: from then on events for the client may follow it on the wire.
    manager = sio.manager
    original = manager.connect

    async def connect(sid: Any, namespace: str) -> Any:
        result = await original(sid, namespace)
        fire(hooks, "connected", namespace, sid)
        return result

    manager.connect = connect


class Host:
    """A python-socketio AsyncServer or AsyncClient, seen from sio_stream.

    The peer checks work on any python-socketio server's manager; a sync driver subclass
    overrides :meth:`_check_kind`, :meth:`on_lifecycle` and :meth:`emitter`.
    """

    def __init__(self, sio: Any, namespace: str) -> None:
        self.is_server = self._check_kind(sio)
        #: Server handlers get the client's sid first (not Flask-SocketIO's: request.sid).
        self.handlers_take_sid = self.is_server
        self.sio = sio
        self.namespace = namespace

    @staticmethod
    def _check_kind(sio: Any) -> bool:
        """True for a server, False for a client; raises for anything else."""
        if isinstance(sio, socketio.AsyncServer):
            if not sio.async_handlers:
                raise LocalProtocolError(
                    "sio_stream needs AsyncServer(async_handlers=True) (the default): with "
                    "async_handlers=False python-socketio runs one handler at a time, so a "
                    "handler reading a stream would wait forever for data queued behind it"
                )
            return True
        if isinstance(sio, socketio.AsyncClient):
            return False
        hint = ""
        if isinstance(sio, (socketio.Server, socketio.Client)) or hasattr(sio, "server"):
            hint = " (for a socketio.Server, socketio.Client or Flask-SocketIO, use sio_stream.sync.ss)"
        raise TypeError(
            f"ss() takes a socketio.AsyncServer or socketio.AsyncClient, not {type(sio).__name__}{hint}"
        )

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
        install_lifecycle(
            self.sio, self.namespace, hook, self.is_server, _wrap_trigger_event, _wrap_manager_connect
        )

    def emitter(self, peer: Any) -> Callable[[str, tuple[Any, ...], Any], Any]:
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

    def meter(self, peer: Any) -> Meter | None:
        """The meter of what ``peer``'s connection has queued in python-engineio, unsent (see
        :mod:`sio_stream.glue._unsent`); ``None`` when its queue is not metered or it is gone."""
        eio = getattr(self.sio, "eio", None)
        if not self.is_server:
            return meter_of(getattr(eio, "queue", None))
        eio_sid = self.sio.manager.eio_sid_from_sid(peer, self.namespace)
        sockets = getattr(eio, "sockets", None)
        socket = sockets.get(eio_sid) if isinstance(sockets, dict) and eio_sid is not None else None
        return meter_of(getattr(socket, "queue", None))

    def is_connected(self, peer: Any) -> bool:
        """False for a server sid that has left (or is leaving) this namespace; a client's one
        connection is replaced on reconnect, so it always counts as connected."""
        if not self.is_server:
            return True
        return bool(self.sio.manager.is_connected(peer, self.namespace))

    def recipients(self, to: Any, skip_sid: Any) -> list[str] | None:
        """The sids an emit to ``to`` reaches, or ``None`` for one peer addressed directly (a
        client's server, or a server's single sid with no ``skip_sid``).

        ``to`` is a sid, a room, or a list of them, and ``skip_sid`` a sid or a list, as in
        python-socketio; only clients connected to this process are listed. Raises
        :class:`LocalProtocolError` when that leaves nobody.
        """
        if not self.is_server or to is None:
            return None
        manager = self.sio.manager
        if isinstance(to, str):
            if skip_sid is None and manager.eio_sid_from_sid(to, self.namespace):
                return None
            if to not in manager.rooms.get(self.namespace, {}):
                self.check_peer(to)  # raises, saying what `to` named
        elif not isinstance(to, (list, tuple)) or not all(isinstance(room, str) for room in to):
            self.check_peer(to)  # raises
        rooms = [to] if isinstance(to, str) else list(to)
        skip = {skip_sid} if isinstance(skip_sid, str) else set(skip_sid or ())
        sids = [
            sid
            for sid, _ in manager.get_participants(self.namespace, rooms)
            if sid not in skip and (self.is_connected(sid) or self.is_connecting(sid))
        ]
        if not sids:
            raise LocalProtocolError(
                f"no client in {to!r} is connected to namespace {self.namespace!r} in this process"
            )
        return sids

    def is_local(self, peer: Any) -> bool:
        """True for a server sid connected (or connecting) to this process."""
        if not self.is_server or not isinstance(peer, str):
            return False
        return self.sio.manager.eio_sid_from_sid(peer, self.namespace) is not None

    def is_connecting(self, peer: Any) -> bool:
        """True for a server sid whose connect handler is running: python-socketio has not
        sent its CONNECT packet yet, so nothing may be sent to it before that."""
        if not self.is_server:
            return False
        return bool(self.sio.manager.is_pre_connected(peer, self.namespace))

    def will_reconnect(self) -> bool:
        """A client that reconnects by itself after its transport fails (python-socketio's
        ``reconnection``); a server never does."""
        return not self.is_server and bool(getattr(self.sio, "reconnection", False))

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
            # Say what `to=` named: something shaped like python-engineio's sids (20 URL-safe
            # base64 characters), or anything else (rooms never come here: see recipients()).
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
                "process nor a room of it: pass to=sid, a room, or a list of them"
            )
        else:
            if peer is not None:
                raise LocalProtocolError("a client emits to its server: do not pass to=")
            if self.namespace not in self.sio.namespaces:
                raise LocalProtocolError(f"the client is not connected to namespace {self.namespace!r}")
