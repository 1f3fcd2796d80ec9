"""A network link emulator: a userspace TCP proxy on 127.0.0.1 with a rate, a delay and a queue.

    python benchmarks/link.py --target 127.0.0.1:8765 --rate 100M --rtt 50ms [--queue 5M]
                              [--listen 127.0.0.1:0] [--cut-every 10s] [--stats]

In-process (tests)::

    async with Link(target_port, rate=100e6, rtt=0.05) as link:
        ...connect to link.port (or link.url)...
        link.cut()                   # abort every open connection; new ones are still accepted

The CLI prints ``LISTENING <port>`` and forwards every connection to the target until SIGTERM,
SIGINT or until its stdin closes (the benchmarks' harness stops its children that way).

What is modelled, per direction (client -> target is ``up``, target -> client is ``down``), shared
by every connection through the link, as one physical link is:

* **a rate** (bytes/s): a serialization clock. A piece read from a socket at time ``t`` starts
  at ``max(t, end of the previous piece)`` and takes ``len / rate``; pieces of every connection
  go through one clock in arrival order (FIFO), so 8 connections share the rate, they do not get
  8 times it. ``rate=None``: no limit (a pure delay line, what ``delay_proxy.py`` was);
* **a one-way delay** (``rtt / 2``): a piece is delivered ``delay`` after it was serialized;
* **a finite queue** (bytes waiting for the serializer; default one bandwidth-delay product,
  but at least 10 ms of the rate and 4 reads, below which the emulator would measure its own
  scheduling jitter): bytes that do not fit are not read from the sending socket at all, so
  TCP backpressure reaches the sender (its writes block) instead of anything being dropped.
  Reads are sized to the room left, so ``queued <= queue`` (``+ read_size`` at worst). With
  ``rate=None`` there is no serializer and ``queue`` bounds every byte in transit instead.
  Bytes already serialized are on the wire: at most ``rate x delay`` (plus one read) of them.
  A receiver slower than the link stops it too: once the proxy's socket towards it takes no
  more (``WRITE_HIGH_WATER`` in its write buffer), the link stops reading that connection's
  sender, as the receive window of a real TCP would close.

What is not modelled: loss, reordering, jitter, asymmetric links (one rate and delay for both
directions), and TCP's own dynamics. The proxy terminates TCP on both sides, like a split-TCP
performance-enhancing proxy: the kernel's TCP sees loopback, so there is no slow start and no
congestion window; what the delay costs is the application's own round trips (its acks, its
flow-control credit), which is what these benchmarks are about. The TCP handshake is not
delayed (``connect()`` returns at once; the first data pays the delay). An abort (RST) reaches
the other side at once and drops the bytes still in the link; an orderly close (FIN) travels
in order behind the data, so half-closed connections work. The proxy's own kernel socket
buffers are kept small (``socket_buffer``) so that bytes the link does not hold wait in the
sender's socket, not hidden in the proxy's.

A link that cuts: ``link.cut()`` aborts every open connection (both sockets, with an RST:
``SO_LINGER`` 0), as a network failure would; ``cut_every=N`` does it every N seconds. The link
keeps listening, so a python-socketio client that reconnects comes back through it.

``link.statistics()`` returns counters per direction (bytes queued / on the wire now and their
peaks, delivered, dropped) and per link (connections open, accepted, cut).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import re
import signal
import socket
import stat
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: Bytes per read from a socket: the granularity of the serializer (0.66 ms at 100 MB/s).
READ_SIZE = 64 * 1024
#: SO_RCVBUF / SO_SNDBUF of the proxy's own sockets (Linux doubles it): small, so that bytes the
#: link has no room for wait in the sender's socket, where a real sender would hold them.
SOCKET_BUFFER = 256 * 1024
#: The transport's write buffer above which the link stops reading the other socket of a
#: connection (its receiver is slower than the link: the receive window of a real TCP closes).
WRITE_HIGH_WATER = 256 * 1024
#: The queue of a link without a rate (a delay line): the old delay proxy's hold limit.
DELAY_LINE_QUEUE = 64 * 1024 * 1024
#: The shallowest default queue, in seconds of the rate.
MIN_QUEUE_SECONDS = 0.010


@dataclass(frozen=True)
class DirectionStatistics:
    """Counters of one direction of a link, summed over its connections."""

    queued: int  #: bytes read from senders, waiting for the serializer
    in_flight: int  #: bytes serialized, not yet delivered (on the wire)
    peak_queued: int  #: the most ``queued`` has been
    peak_held: int  #: the most ``queued + in_flight`` has been
    delivered: int  #: bytes handed to receiving sockets
    dropped: int  #: bytes discarded because their connection was aborted
    paused: int  #: sending sockets the link is not reading right now
    blocked: int  #: receiving sockets that take no more right now (their senders are paused)


@dataclass(frozen=True)
class LinkStatistics:
    up: DirectionStatistics  #: client -> target
    down: DirectionStatistics  #: target -> client
    connections: int  #: open now
    accepted: int  #: accepted since the start
    cuts: int  #: connections aborted by ``cut()`` (or ``cut_every``)


class _Piece:
    __slots__ = ("data", "dst", "due", "finish")

    def __init__(self, dst: _Side, data: bytes, finish: float, due: float) -> None:
        self.dst = dst
        self.data = data  # b"": the sender's EOF, forwarded in order
        self.finish = finish
        self.due = due


class _Direction:
    """One direction of the link: a serialization clock, a FIFO queue and a delay line.

    Time advances lazily (on every read, and on a timer at the next delivery or, while senders
    are paused for room, at the next serialization end), so late timers on a busy machine bunch
    deliveries up but never lose rate: the clock was set when the bytes arrived.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, rate: float | None, delay: float, queue: int) -> None:
        self.loop = loop
        self.rate = rate
        self.delay = delay
        self.queue = queue
        self.clock = 0.0  # when the serializer is free
        self.waiting: collections.deque[_Piece] = collections.deque()
        self.wire: collections.deque[_Piece] = collections.deque()
        self.queued = 0
        self.in_flight = 0
        self.peak_queued = 0
        self.peak_held = 0
        self.delivered = 0
        self.dropped = 0
        self.senders: set[_Side] = set()
        self.full = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    # -- room -------------------------------------------------------------------------------------
    def room(self) -> int:
        held = self.queued if self.rate is not None else self.queued + self.in_flight
        return self.queue - held

    def _check_room(self) -> None:
        room = self.room()
        if not self.full and room <= 0:
            self.full = True
            for side in self.senders:
                side.update_reading()
        elif self.full and room >= min(READ_SIZE, self.queue):
            # Hysteresis: resume when a whole read fits, not for a few bytes at a time.
            self.full = False
            for side in self.senders:
                side.update_reading()

    # -- input ------------------------------------------------------------------------------------
    def accept(self, src: _Side, data: bytes) -> None:
        """``data`` (b"" for EOF) was read from ``src``: queue it for ``src``'s peer."""
        assert src.peer is not None
        now = self.loop.time()
        self._advance(now)
        n = len(data)
        if self.rate is None:
            finish = now
            self.in_flight += n
            self.wire.append(_Piece(src.peer, data, finish, finish + self.delay))
        else:
            finish = max(now, self.clock) + n / self.rate
            self.clock = finish
            self.queued += n
            self.waiting.append(_Piece(src.peer, data, finish, finish + self.delay))
        self.peak_queued = max(self.peak_queued, self.queued)
        self.peak_held = max(self.peak_held, self.queued + self.in_flight)
        if self.delay == 0 and self.rate is None:
            self._advance(now)  # nothing to wait for: forward at once
        self._check_room()
        self._schedule()

    # -- time -------------------------------------------------------------------------------------
    def advance(self) -> None:
        self._advance(self.loop.time())

    def _advance(self, now: float) -> None:
        waiting, wire = self.waiting, self.wire
        while waiting and waiting[0].finish <= now:
            piece = waiting.popleft()
            n = len(piece.data)
            self.queued -= n
            self.in_flight += n
            wire.append(piece)
        while wire and wire[0].due <= now:
            piece = wire.popleft()
            self.in_flight -= len(piece.data)
            self._deliver(piece)

    def _deliver(self, piece: _Piece) -> None:
        dst = piece.dst
        if dst.closed:
            self.dropped += len(piece.data)
            return
        if piece.data:
            self.delivered += len(piece.data)
            dst.write(piece.data)
        else:
            dst.write_eof()

    def _next_event(self) -> float | None:
        times = []
        if self.wire:
            times.append(self.wire[0].due)
        if self.waiting:
            times.append(self.waiting[0].finish + self.delay)
            if self.full:
                times.append(self.waiting[0].finish)
        return min(times) if times else None

    def _schedule(self) -> None:
        at = self._next_event()
        if at is None:
            return
        if self._timer is not None:
            if self._timer_at <= at:
                return
            self._timer.cancel()
        self._timer_at = at
        self._timer = self.loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._advance(self.loop.time())
        self._check_room()
        self._schedule()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def statistics(self) -> DirectionStatistics:
        self._advance(self.loop.time())
        return DirectionStatistics(
            queued=self.queued,
            in_flight=self.in_flight,
            peak_queued=self.peak_queued,
            peak_held=self.peak_held,
            delivered=self.delivered,
            dropped=self.dropped,
            paused=sum(1 for side in self.senders if not side.reading),
            blocked=sum(1 for side in self.senders if side.peer is not None and side.peer.write_blocked),
        )


class _Side(asyncio.BufferedProtocol):
    """One socket of a proxied connection: what it reads goes into ``out`` towards ``peer``."""

    def __init__(self, link: Link, out: _Direction) -> None:
        self.link = link
        self.out = out
        self.peer: _Side | None = None
        self.transport: asyncio.Transport | None = None
        self.buffer = memoryview(bytearray(READ_SIZE))
        self.reading = True
        self.closed = False
        self.got_eof = False  # the socket sent its FIN
        self.sent_eof = False  # we forwarded the peer's FIN to it
        self.write_blocked = False
        self.stranded = False  # aborted without a word to the peer (see Link.strand)

    # -- asyncio callbacks -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.update_reading()  # not before the peer exists

    def get_buffer(self, sizehint: int) -> memoryview:
        self.out.advance()
        room = self.out.room()
        # Read only what the queue has room for (the whole read if a race left none).
        return self.buffer[: min(READ_SIZE, room) if room > 0 else READ_SIZE]

    def buffer_updated(self, nbytes: int) -> None:
        self.out.accept(self, bytes(self.buffer[:nbytes]))

    def eof_received(self) -> bool:
        self.got_eof = True
        self.update_reading()
        self.out.accept(self, b"")
        return True  # half-close: keep sending the other way

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.out.senders.discard(self)
        self.link._forget(self)
        # Unless both directions ended in order (then we closed both), this is a reset or a cut:
        # the other socket is aborted at once, as an RST would reach it.
        if (
            self.peer is not None
            and not self.peer.closed
            and not self.stranded
            and (exc is not None or not (self.got_eof and self.sent_eof))
        ):
            self.peer.abort()

    def pause_writing(self) -> None:
        self.write_blocked = True
        if self.peer is not None:
            self.peer.update_reading()

    def resume_writing(self) -> None:
        self.write_blocked = False
        if self.peer is not None:
            self.peer.update_reading()

    # -- control ----------------------------------------------------------------------------------
    def update_reading(self) -> None:
        """Read while paired, the queue has room and this connection's receiver keeps up."""
        if self.transport is None or self.closed or self.got_eof:
            return
        want = (
            self.peer is not None
            and not self.peer.closed
            and not self.out.full
            and not self.peer.write_blocked
        )
        if want and not self.reading:
            self.reading = True
            self.transport.resume_reading()
        elif not want and self.reading:
            self.reading = False
            self.transport.pause_reading()

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def write_eof(self) -> None:
        assert self.transport is not None
        self.sent_eof = True
        if self.transport.can_write_eof():
            try:
                self.transport.write_eof()
            except OSError:  # the peer is gone (ENOTCONN): nothing is left to tell it
                self.transport.abort()
                return
        if self.got_eof and self.peer is not None and self.peer.sent_eof:
            # Both directions ended in order: close both (buffered bytes are flushed first).
            self.transport.close()
            if self.peer.transport is not None:
                self.peer.transport.close()

    def abort(self) -> None:
        """Close abruptly: an RST, not a FIN (SO_LINGER on, timeout 0)."""
        was_closed, self.closed = self.closed, True
        if self.transport is None or was_closed:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


class Link:
    """A TCP proxy from ``host:port`` (default: 127.0.0.1, any free port) to ``target_port``
    that behaves like a link of ``rate`` bytes/s, ``rtt`` seconds of round trip and a queue of
    ``queue`` bytes per direction (see the module docstring for what is and is not modelled).

    ``cut_every`` (seconds): abort every open connection that often (``cut()`` does it once).
    ``socket_buffer``: SO_RCVBUF / SO_SNDBUF of the proxy's sockets (None: the kernel's).

    Use as ``async with Link(...) as link`` or ``await link.start()`` / ``await link.aclose()``;
    ``link.port`` is the listening port once started. Raises ``OSError`` from ``start()`` when
    it cannot listen; a failed connection to the target aborts the client's connection.
    """

    def __init__(
        self,
        target_port: int,
        *,
        rate: float | None = None,
        rtt: float = 0.0,
        queue: int | None = None,
        target_host: str = "127.0.0.1",
        host: str = "127.0.0.1",
        port: int = 0,
        cut_every: float | None = None,
        socket_buffer: int | None = SOCKET_BUFFER,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive (None: unlimited)")
        if rtt < 0:
            raise ValueError("rtt must be >= 0")
        self.target = (target_host, target_port)
        self.rate = rate
        self.rtt = rtt
        if queue is None:
            if rate is None:
                queue = DELAY_LINE_QUEUE
            else:
                queue = int(max(rate * rtt, rate * MIN_QUEUE_SECONDS, 4 * READ_SIZE))
        if queue <= 0:
            raise ValueError("queue must be positive")
        self.queue = queue
        self.host = host
        self.port = port
        self.cut_every = cut_every
        self.socket_buffer = socket_buffer
        self.accepted = 0
        self.cuts = 0
        self._sides: set[_Side] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._up: _Direction | None = None
        self._down: _Direction | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self.rtt / 2
        self._up = _Direction(loop, self.rate, delay, self.queue)
        self._down = _Direction(loop, self.rate, delay, self.queue)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._size_buffers(listener)  # accepted sockets inherit it (and the window scale it implies)
        listener.bind((self.host, self.port))
        self._server = await loop.create_server(self._accepted, sock=listener, backlog=128)
        self.port = listener.getsockname()[1]
        if self.cut_every:
            self._spawn(self._cut_periodically(self.cut_every))

    async def aclose(self) -> None:
        """Stop listening and abort every open connection."""
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
        for side in list(self._sides):
            side.abort()
        if self._server is not None:
            await self._server.wait_closed()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for direction in (self._up, self._down):
            if direction is not None:
                direction.close()

    async def __aenter__(self) -> Link:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def set_delay(self, *, up: float | None = None, down: float | None = None) -> None:
        """Change a direction's one-way delay (seconds) from now on: a latency spike, or one
        direction slower than the other. Bytes already on the link keep their delivery times."""
        assert self._up is not None and self._down is not None, "start() the link first"
        for direction, delay in ((self._up, up), (self._down, down)):
            if delay is not None:
                if delay < 0:
                    raise ValueError("delay must be >= 0")
                direction.delay = delay

    def cut(self) -> int:
        """Abort every open connection (RST on both sockets); returns how many were cut."""
        clients = [side for side in self._sides if side.out is self._up and not side.closed]
        for client in clients:
            client.abort()
            if client.peer is not None:
                client.peer.abort()
        self.cuts += len(clients)
        return len(clients)

    def strand(self) -> int:
        """Abort the clients' sockets only, and leave the servers' open and silent: a connection
        that died on the way (a NAT that lost its state, a phone gone to another network), which
        the server learns of only from its own timeouts. Returns how many were stranded."""
        clients = [side for side in self._sides if side.out is self._up and not side.closed]
        for client in clients:
            client.stranded = True
            client.abort()
        self.cuts += len(clients)
        return len(clients)

    def statistics(self) -> LinkStatistics:
        assert self._up is not None and self._down is not None, "start() the link first"
        return LinkStatistics(
            up=self._up.statistics(),
            down=self._down.statistics(),
            connections=sum(1 for side in self._sides if side.out is self._up),
            accepted=self.accepted,
            cuts=self.cuts,
        )

    # -- internals ----------------------------------------------------------------------------------
    def _size_buffers(self, sock: socket.socket) -> None:
        if self.socket_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.socket_buffer)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.socket_buffer)

    def _accepted(self) -> _Side:
        assert self._up is not None
        self.accepted += 1
        client = _Side(self, self._up)
        self._sides.add(client)
        self._spawn(self._connect(client))
        return client

    async def _connect(self, client: _Side) -> None:
        assert self._down is not None and self._up is not None
        loop = asyncio.get_running_loop()
        upstream = _Side(self, self._down)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._size_buffers(sock)
            sock.setblocking(False)
            await loop.sock_connect(sock, self.target)
            await loop.create_connection(lambda: upstream, sock=sock)
        except OSError:
            sock.close()
            client.abort()
            return
        except asyncio.CancelledError:
            sock.close()
            raise
        if client.closed:
            upstream.abort()
            return
        self._sides.add(upstream)
        client.peer, upstream.peer = upstream, client
        self._up.senders.add(client)
        self._down.senders.add(upstream)
        client.update_reading()
        upstream.update_reading()

    def _forget(self, side: _Side) -> None:
        self._sides.discard(side)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cut_periodically(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)  # the cadence itself, not a synchronization
            self.cut()


# -- command line -----------------------------------------------------------------------------------
_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "ki": 1024, "mi": 1024**2, "gi": 1024**3}


def parse_size(text: str) -> float:
    """``100M`` -> 100e6, ``64Ki`` -> 65536, ``1.5G`` -> 1.5e9 (bytes; a trailing ``B`` or
    ``/s`` is allowed); ``0``, ``inf`` or ``none`` -> ``inf``."""
    t = text.strip().lower().removesuffix("/s").removesuffix("b")
    if t in ("0", "inf", "none", "unlimited"):
        return float("inf")
    match = re.fullmatch(r"([0-9.]+(?:e[0-9]+)?)\s*(ki|mi|gi|k|m|g)?", t)
    if not match:
        raise ValueError(f"not a size: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2) or ""]


def parse_duration(text: str) -> float:
    """``50ms`` -> 0.05, ``0.2s`` -> 0.2, ``50`` -> 0.05 (plain numbers are milliseconds)."""
    t = text.strip().lower()
    if t.endswith("ms"):
        return float(t[:-2]) / 1000
    if t.endswith("s"):
        return float(t[:-1])
    return float(t) / 1000


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--target", required=True, help="HOST:PORT to forward to (HOST defaults to 127.0.0.1)")
    p.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT to listen on (default: any free port)")
    p.add_argument(
        "--rate", default="inf", help="bytes/s per direction: 100M, 1.5G, 800k (default: no limit)"
    )
    p.add_argument("--rtt", default="0ms", help="round-trip time: 50ms, 0.15s (default 0)")
    p.add_argument("--queue", default=None, help="bytes per direction: 4M, 512Ki (default: see --help)")
    p.add_argument("--cut-every", default=None, help="abort every connection this often: 10s, 500ms")
    p.add_argument("--stats", action="store_true", help="print the counters to stderr on exit")
    return p


async def until_stopped() -> None:
    """Return on SIGTERM or SIGINT, or once standard input closes (the process that started this
    one went away): how the benchmarks' helper processes (this one, tcpbulk.py) end."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    if stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):  # a pipe (not a tty, not /dev/null)
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        stdin_closed = asyncio.ensure_future(reader.read())
        stdin_closed.add_done_callback(lambda _: stop.set())
    await stop.wait()


async def serve(args: argparse.Namespace) -> None:
    target_host, target_port = _address(args.target)
    host, port = _address(args.listen)
    rate = parse_size(args.rate)
    link = Link(
        target_port,
        target_host=target_host,
        host=host,
        port=port,
        rate=None if rate == float("inf") else rate,
        rtt=parse_duration(args.rtt),
        queue=int(parse_size(args.queue)) if args.queue else None,
        cut_every=parse_duration(args.cut_every) if args.cut_every else None,
    )
    async with link:
        print(f"LISTENING {link.port}", flush=True)
        await until_stopped()
        if args.stats:
            print(link.statistics(), file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    asyncio.run(serve(parser().parse_args(argv)))


if __name__ == "__main__":
    main()
