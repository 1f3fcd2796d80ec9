"""A userspace TCP delay proxy for 127.0.0.1: each direction's bytes are held for RTT/2.

    python benchmarks/delay_proxy.py TARGET_PORT RTT_MS

Prints ``LISTENING <port>`` and forwards every connection to ``127.0.0.1:TARGET_PORT`` until
SIGTERM or until its stdin closes. Bandwidth is not limited (the proxy reads eagerly and
forwards each piece ``RTT/2`` after it arrived), only latency is added, so a protocol that keeps
one chunk in flight per round trip shows its real cost. A direction holds at most 64 MiB in
transit: past that the proxy stops reading it (TCP backpressure) until data has been forwarded.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import sys

_HOLD_LIMIT = 64 * 1024 * 1024


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: collections.deque[tuple[float, bytes]] = collections.deque()
    held = 0
    arrived = asyncio.Event()
    room = asyncio.Event()
    room.set()
    done = False

    async def forward() -> None:
        nonlocal held
        while True:
            while not queue:
                if done:
                    return
                arrived.clear()
                await arrived.wait()
            due, data = queue.popleft()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            # Forward everything that is due by now in one write.
            parts = [data]
            while queue and queue[0][0] <= loop.time():
                parts.append(queue.popleft()[1])
            blob = b"".join(parts)
            writer.write(blob)
            held -= len(blob)
            if held < _HOLD_LIMIT:
                room.set()
            await writer.drain()

    sender = asyncio.ensure_future(forward())
    try:
        while data := await reader.read(1 << 20):
            queue.append((loop.time() + delay, data))
            held += len(data)
            arrived.set()
            if held >= _HOLD_LIMIT:
                room.clear()
                await room.wait()
        done = True
        arrived.set()
        await sender
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, asyncio.CancelledError):
        sender.cancel()
    finally:
        if not sender.done():
            sender.cancel()


async def main(target_port: int, rtt_ms: float) -> None:
    delay = rtt_ms / 2000.0

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        try:
            await asyncio.gather(
                _pipe(client_reader, server_writer, delay),
                _pipe(server_reader, client_writer, delay),
                return_exceptions=True,
            )
        except asyncio.CancelledError:
            pass  # the proxy is stopping
        finally:
            for w in (client_writer, server_writer):
                w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(f"LISTENING {server.sockets[0].getsockname()[1]}", flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if not sys.stdin.isatty():
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        stdin_closed = asyncio.ensure_future(reader.read())
        stdin_closed.add_done_callback(lambda _: stop.set())
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
