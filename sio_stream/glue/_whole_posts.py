"""Long-polling POST bodies read whole on an aiohttp server.

python-engineio's aiohttp driver hands engine.io the request's ``StreamReader`` as
``wsgi.input``, and engine.io reads a long-polling POST with one ``read(content_length)``,
which returns what has arrived so far. A body that comes in several TCP segments (a chunk of a
stream is hundreds of kilobytes of base64) is cut short, its base64 or JSON fails to decode,
and the connection drops: a Python client that stays on long-polling (``transports=
["polling"]``, or a proxy that refuses websockets) could send no stream at all to a server
attached the usual way (``sio.attach(app)``).

:func:`configure` gives one engine.io server in aiohttp mode a copy of its table of async-mode
drivers (``eio._async``, shared by all servers of the mode) whose ``translate_request`` hands
engine.io an input whose ``read(n)`` waits for all ``n`` bytes. Nothing global changes, and a
python-engineio that looks otherwise is left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._drivers import wrap_driver

#: On the engine.io server once its POST bodies are read whole.
_DONE_ATTRIBUTE = "_sio_stream_whole_posts"


def configure(eio: Any) -> bool:
    """Make engine.io server ``eio`` read long-polling POST bodies whole, in aiohttp mode;
    return whether it does now (False for every other mode)."""
    return wrap_driver(eio, "aiohttp", "translate_request", _translate, _DONE_ATTRIBUTE)


def _translate(translate: Callable[..., Any]) -> Callable[..., Any]:
    def translate_request(request: Any, *args: Any, **kwargs: Any) -> Any:
        environ = translate(request, *args, **kwargs)
        content = environ.get("wsgi.input") if isinstance(environ, dict) else None
        if content is not None and callable(getattr(content, "readexactly", None)):
            environ["wsgi.input"] = WholeReads(content)
        return environ

    return translate_request


class WholeReads:
    """An aiohttp ``StreamReader`` whose ``read(n)`` returns ``n`` bytes, or all there are when
    the body ends first (``read()``: the whole body)."""

    def __init__(self, content: Any) -> None:
        self._content = content

    async def read(self, n: int = -1) -> bytes:
        if n < 0:
            return bytes(await self._content.read())
        parts: list[bytes] = []
        left = n
        while left > 0:
            part = await self._content.read(left)
            if not part:
                break
            parts.append(part)
            left -= len(part)
        return b"".join(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._content, name)
