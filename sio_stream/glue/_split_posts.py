"""Long-polling POSTs of a Python client kept within the server's payload limit.

python-engineio's client sends everything queued in one long-polling POST, however large, and
a server refuses a body over its ``max_http_buffer_size`` (1,000,000 bytes by default) by
closing the connection. A stream's chunk is up to about 700 kB of base64, so two chunks queued
at once (two streams, or a chunk beside its ``$stream-read``) closed the connection of a client
that stays on long-polling (``transports=["polling"]``, or a proxy that refuses websockets).
socket.io-client keeps its POSTs within the ``maxPayload`` the server announced; python-engineio
does not look at it.

:func:`configure` wraps one client's ``_send_request`` so that a POST body larger than
:data:`MAX_POST` goes as several POSTs, one after the other, each a run of whole packets
(engine.io v4 separates the packets of a payload with ``\\x1e``). The first failed POST is
returned as python-engineio's own would be. Nothing global changes, and a python-engineio
that looks otherwise is left alone.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

#: The largest POST body sent: python-engineio servers' default ``max_http_buffer_size``.
MAX_POST = 1_000_000
_SEPARATOR = "\x1e"
_DONE_ATTRIBUTE = "_sio_stream_split_posts"


def configure(eio: Any) -> bool:
    """Make engine.io client ``eio`` keep each long-polling POST within :data:`MAX_POST` bytes
    (runs of whole packets); return whether it does now."""
    if getattr(eio, _DONE_ATTRIBUTE, False):
        return True
    send = getattr(eio, "_send_request", None)
    if not callable(send):
        return False
    if inspect.iscoroutinefunction(send):
        eio._send_request = _async_sender(send)
    else:
        eio._send_request = _sender(send)
    setattr(eio, _DONE_ATTRIBUTE, True)
    return True


def split(body: str, limit: int = MAX_POST) -> list[str]:
    """``body`` (an engine.io v4 payload) as payloads of whole packets of at most ``limit``
    bytes each; a packet larger than ``limit`` goes alone (the server decides)."""
    if len(body) <= limit // 4 or len(body.encode()) <= limit:
        return [body]
    groups: list[str] = []
    run: list[str] = []
    size = 0
    for packet in body.split(_SEPARATOR):
        length = len(packet.encode())
        if run and size + 1 + length > limit:
            groups.append(_SEPARATOR.join(run))
            run, size = [], -1
        run.append(packet)
        size += 1 + length
    groups.append(_SEPARATOR.join(run))
    return groups


def _failed(response: Any) -> bool:
    status = getattr(response, "status", getattr(response, "status_code", None))
    return response is None or isinstance(response, str) or not (200 <= (status or 0) < 300)


def _async_sender(send: Callable[..., Any]) -> Callable[..., Any]:
    async def send_request(
        method: str, url: str, headers: Any = None, body: Any = None, timeout: Any = None
    ) -> Any:
        if method != "POST" or not isinstance(body, str):
            return await send(method, url, headers=headers, body=body, timeout=timeout)
        response = None
        for part in split(body):
            response = await send(method, url, headers=headers, body=part, timeout=timeout)
            if _failed(response):
                break
        return response

    return send_request


def _sender(send: Callable[..., Any]) -> Callable[..., Any]:
    def send_request(
        method: str, url: str, headers: Any = None, body: Any = None, timeout: Any = None
    ) -> Any:
        if method != "POST" or not isinstance(body, str):
            return send(method, url, headers=headers, body=body, timeout=timeout)
        response = None
        for part in split(body):
            response = send(method, url, headers=headers, body=part, timeout=timeout)
            if _failed(response):
                break
        return response

    return send_request
