"""A TCP relay on 127.0.0.1 whose directions can stop: a peer that never reads its socket, as a
hostile reader (or a stuck one) is, while its own packets still reach the other side. A stopped
direction reads nothing from its sender, with small kernel buffers, so the sender's writes
back up into its own process quickly (TCP backpressure)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

#: Kernel buffers of the relay's sockets: small, so that what the server queues stays in the
#: server's process instead of hiding in the relay's.
_BUFFER = 64 * 1024


class StallRelay:
    """``url`` forwards to ``target_port``; :meth:`stop_downstream` (server to client) and
    :meth:`stop_upstream` (client to server) stop a direction, ``resume_*`` start it again."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._flowing = asyncio.Event()  # downstream
        self._flowing.set()
        self._up = asyncio.Event()
        self._up.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop_downstream(self) -> None:
        """Read nothing more from the server's side (the client stops reading its socket)."""
        self._flowing.clear()

    def resume_downstream(self) -> None:
        self._flowing.set()

    def stop_upstream(self) -> None:
        """Read nothing more from the client's side (the server stops reading its socket)."""
        self._up.clear()

    def resume_upstream(self) -> None:
        self._up.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accepted, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        self._flowing.set()
        self._up.set()
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accepted(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self._target_port))
        server_reader, server_writer = await asyncio.open_connection(sock=sock, limit=_BUFFER)
        self._writers += [client_writer, server_writer]
        client_writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)
        for src, dst, gate in (
            (client_reader, server_writer, self._up),
            (server_reader, client_writer, self._flowing),
        ):
            task = asyncio.ensure_future(self._pump(src, dst, gate))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, gate: asyncio.Event) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                await gate.wait()
                data = await src.read(_BUFFER)
                if not data:
                    break
                dst.write(data)
                await dst.drain()
        dst.close()


@contextlib.asynccontextmanager
async def stall_relay(target_port: int) -> AsyncIterator[StallRelay]:
    relay = StallRelay(target_port)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.aclose()
