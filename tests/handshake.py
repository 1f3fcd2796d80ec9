"""A websocket upgrade that offers ``permessage-deflate`` as Chromium does, to see what a server
answers: the handshake alone, on a raw TCP connection (no client library deciding for us)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from urllib.parse import urlsplit

#: The engine.io websocket endpoint a socket.io-client opens (``transports: ['websocket']``).
ENGINEIO_WEBSOCKET = "/socket.io/?EIO=4&transport=websocket"
#: What Chromium sends in ``Sec-WebSocket-Extensions``.
CHROMIUM_OFFER = "permessage-deflate; client_max_window_bits"


async def extensions_answered(url: str, path: str = ENGINEIO_WEBSOCKET, offer: str = CHROMIUM_OFFER) -> str:
    """Upgrade ``url`` + ``path`` to a websocket offering ``offer``; return the server's
    ``Sec-WebSocket-Extensions`` ("" when it accepted none). Fails unless the answer is 101."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    reader, writer = await asyncio.open_connection(host, port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Extensions: {offer}\r\n\r\n"
        )
        writer.write(request.encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    status, *lines = head.decode("latin-1").split("\r\n")
    assert status.split()[1] == "101", head
    found = [
        value.strip()
        for name, _, value in (line.partition(":") for line in lines)
        if name.lower() == "sec-websocket-extensions"
    ]
    return ", ".join(found)
