"""No ``permessage-deflate`` on the websockets of a server that carries streams.

Every browser offers WebSocket compression (``Sec-WebSocket-Extensions: permessage-deflate``)
and python-engineio's drivers accept it: aiohttp's ``WebSocketResponse`` (``compress=True`` by
default, and python-engineio passes no option), simple-websocket (threading and gevent modes:
it always hands wsproto a ``PerMessageDeflate``) and eventlet's ``WebSocketWSGI``. Every message
is then deflated by its sender and inflated by its receiver. File data hardly compresses, and in
Chromium that zlib work held our JavaScript client to about a third of the rate of its bare
WebSocket, both ways (issue 24). Python clients offer no compression, so they never saw it.

:func:`configure` makes one engine.io server answer the browser's offer with no extension:
its websocket driver is given the upgrade request without the offer, and a server that is
offered nothing negotiates nothing (RFC 6455, section 9.1: a server accepts only extensions the
client asked for). The hook is the server's own table of async-mode drivers (``eio._async``, which
python-engineio shares between all servers of a mode): the server gets a copy of it whose
``websocket`` entry wraps the original. Nothing global changes; other servers in the process,
and every other request of this one, are untouched; the environ the application sees
(``sio.get_environ(sid)``) keeps the header.

ASGI cannot be fixed from here: the ASGI server negotiates extensions itself, from its own
settings, and the ASGI interface gives the application no say (uvicorn's websockets-sansio
implementation, its default when ``websockets`` is installed, even settles them when the request
arrives, before the application runs; hypercorn always accepts ``permessage-deflate`` and has no
setting). Under uvicorn, pass ``ws_per_message_deflate=False``
(``--ws-per-message-deflate false``): see docs/guides/asgi.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._errors import InvalidOptionError

#: Async modes whose websocket driver negotiates from the request it is handed. Not "asgi"
#: (see the module docstring), nor tornado, sanic or uwsgi (their servers read the request
#: themselves, or have no permessage-deflate). Not "gevent" either, although it could: there
#: simple-websocket 1.1.0 writes a frame with one ``socket.send()`` and ignores its count, and
#: gevent's send is partial once the socket buffer is full, so bytes of a frame go missing and
#: Chromium drops the connection. Deflating paces the server enough to hide it (0 failures in 14
#: 32 MiB downloads to Chromium); without it, 4 of 8 failed, and none with ``sendall``.
FIXABLE_MODES = frozenset({"aiohttp", "threading", "eventlet"})

#: The offer, as a WSGI environ key (python-engineio's aiohttp driver makes the same key).
_OFFER = "HTTP_SEC_WEBSOCKET_EXTENSIONS"
#: On the engine.io server: (``websocket_compression`` of the first ``ss()`` call, declined).
_DECIDED_ATTRIBUTE = "_sio_stream_websocket_compression"


def configure(eio: Any, websocket_compression: bool) -> bool:
    """Keep or decline ``permessage-deflate`` on the websockets of engine.io server ``eio``.

    The first call for a server decides, once and for all its namespaces; a later call with the
    other value raises :class:`InvalidOptionError` (one server cannot do both). Returns whether
    the websockets of ``eio`` go uncompressed because of it: False when ``websocket_compression``
    is True, and for an async mode not in :data:`FIXABLE_MODES` (ASGI: the ASGI server decides).
    """
    decided: tuple[bool, bool] | None = getattr(eio, _DECIDED_ATTRIBUTE, None)
    if decided is None:
        decided = (websocket_compression, not websocket_compression and _decline(eio))
        setattr(eio, _DECIDED_ATTRIBUTE, decided)
    elif decided[0] != websocket_compression:
        raise InvalidOptionError(
            f"websocket_compression={decided[0]} was set by the first ss() call for this server: "
            "it applies to the whole Socket.IO server, every namespace"
        )
    return decided[1]


def _decline(eio: Any) -> bool:
    if getattr(eio, "async_mode", None) not in FIXABLE_MODES:
        return False
    drivers = getattr(eio, "_async", None)
    if not isinstance(drivers, Mapping) or drivers.get("websocket") is None:
        return False  # a python-engineio we do not know: leave it alone
    websocket = drivers["websocket"]
    # A copy for this server: python-engineio's table is one dict per async mode, shared.
    eio._async = {**drivers, "websocket": _without_offer_factory(websocket)}
    return True


def _without_offer_factory(websocket: Callable[..., Any]) -> Callable[..., Any]:
    """python-engineio's ``websocket(handler, server)`` factory, whose websockets are handed the
    upgrade request without the client's extension offer."""

    def factory(handler: Any, server: Any) -> _WithoutOffer:
        return _WithoutOffer(websocket(handler, server))

    return factory


class _WithoutOffer:
    """Calls the driver's websocket (``ws(environ)``, or ``ws(environ, start_response)`` for
    WSGI) with :func:`without_offer`'s environ; python-engineio uses the driver's object only
    through that call (the driver hands itself to engine.io's handler). Other attributes are
    the driver's."""

    def __init__(self, websocket: Any) -> None:
        self._websocket = websocket

    def __call__(self, environ: dict[str, Any], *args: Any) -> Any:
        return self._websocket(without_offer(environ), *args)

    def __getattr__(self, name: str) -> Any:
        # The driver's own attributes (simple-websocket's ``server_args``, which
        # sio_stream.glue._server_reads adjusts) stay reachable through this wrapper.
        return getattr(self._websocket, name)


def without_offer(environ: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``environ`` without ``Sec-WebSocket-Extensions``, in its WSGI key and, under
    aiohttp, in the request aiohttp's ``WebSocketResponse`` negotiates from; ``environ`` itself
    when there is no offer."""
    if _OFFER not in environ:
        return environ
    stripped = {key: value for key, value in environ.items() if key != _OFFER}
    request = environ.get("aiohttp.request")
    if request is not None:
        headers = request.headers.copy()
        headers.popall("Sec-WebSocket-Extensions", None)
        stripped["aiohttp.request"] = request.clone(headers=headers)
    return stripped
