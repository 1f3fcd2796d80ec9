"""``benchmarks/link.py``'s cutting relay for sync tests: the asyncio Link runs on an event loop
of its own in a daemon thread, and :meth:`ThreadedLink.cut` aborts its connections from the
test's thread (waiting for the loop to have done it)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.link import Link


class ThreadedLink:
    """A started :class:`Link` and the loop thread that drives it."""

    def __init__(self, link: Link, loop: asyncio.AbstractEventLoop) -> None:
        self.link = link
        self._loop = loop

    @property
    def url(self) -> str:
        return self.link.url

    def _run(self, fn: Any) -> Any:
        async def call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(30)

    def cut(self) -> int:
        """Abort every open connection (RST both ways); returns how many were cut."""
        return int(self._run(self.link.cut))

    def strand(self) -> int:
        """Abort the clients' sockets only, the servers' left open (see :meth:`Link.strand`)."""
        return int(self._run(self.link.strand))

    def connections(self) -> int:
        return int(self._run(lambda: self.link.statistics().connections))


@contextmanager
def threaded_link(target_port: int, **options: Any) -> Iterator[ThreadedLink]:
    """A :class:`Link` to ``target_port`` (options as :class:`Link`'s), on its own loop thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="link", daemon=True)
    thread.start()
    link = Link(target_port, **options)
    try:
        asyncio.run_coroutine_threadsafe(link.start(), loop).result(30)
        yield ThreadedLink(link, loop)
    finally:
        asyncio.run_coroutine_threadsafe(link.aclose(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
