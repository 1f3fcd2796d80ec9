"""Helpers shared by the tests: a real aiohttp server on 127.0.0.1 and polling waits."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable, Iterator
from typing import Any

import socketio
from aiohttp import web


async def start_server(server: socketio.AsyncServer, *, host: str = "127.0.0.1") -> tuple[web.AppRunner, str]:
    app = web.Application()
    server.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://{host}:{port}"


async def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait until ``predicate()`` is true, polling the event loop (never a fixed sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.005)


@contextlib.contextmanager
def unretrieved_exceptions() -> Iterator[list[dict[str, Any]]]:
    """Collect what asyncio reports as "Task exception was never retrieved" (or "Future ...")
    while inside, and at a ``gc.collect()`` on the way out (a task reports when it is freed)."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    reports: list[dict[str, Any]] = []

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "never retrieved" in str(context.get("message")):
            reports.append(context)
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    try:
        yield reports
        gc.collect()
    finally:
        loop.set_exception_handler(previous)
