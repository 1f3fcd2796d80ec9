"""The settings of a connection's protocol core: defaults (with the measurements that chose
them), the negotiated feature names, and :class:`CoreConfig`."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ._budget import Budget
from ._window import CreditLimit

#: Largest chunk a writer puts in one ``$stream-write``: under python-socketio's default
#: 1,000,000-byte message limit with room for the packet header, and large enough that the
#: per-packet cost of python-socketio (two websocket messages, their decoding and an event task
#: per chunk) is small beside the bytes. 512 KiB, not 256: with the same 2 MiB in flight, one
#: stream on loopback took 1.60 / 1.48 CPU s/GiB (both processes, up / down) against 2.26 /
#: 2.28 and moved 796 / 812 MB/s against 502 / 486 (2026-12-07, busy 2-core machine, median of 4).
DEFAULT_MAX_CHUNK = 512 * 1024
#: Chunks a reader keeps in flight: 4 x 512 KiB = 2 MiB per stream, enough to keep ~40 MB/s
#: flowing over a 50 ms round trip while bounding what one stream can make a reader hold.
DEFAULT_WINDOW = 4
#: Most bytes a byte stream's read window grows to on a long link (see _tuning.py), toward a
#: writer that announced window-growth. 32 MiB: 100 MB/s at 150 ms is 15 MB in flight, and a
#: window refilled in quarter batches keeps only three quarters of itself in flight (20 MB); a
#: link that queues one bandwidth-delay product doubles the round trip a busy stream sees (the
#: benchmarks' link emulator does). Measured (benchmarks/links.py, 150 ms, 192 MiB): 16 MiB
#: held a stream to ~80 MB/s after the ramp, 32 MiB to the link's ~94. quiche caps a stream at
#: 16 MiB and a connection at 24; the issue's bound is 16-32. It stays within the shared pool
#: (half of max_buffered), so one connection holds at most its budget whatever its windows.
DEFAULT_MAX_WINDOW = 32 * 1024 * 1024
#: Bytes of credit a reader offers, in its hello, for the first byte stream the peer creates
#: (negotiated ``initial-credit``, see _initial.py). A stream otherwise waits for its event to
#: arrive and its first credit to come back, then ramps its window: on a 150 ms link at 100
#: MB/s a 48 MiB upload took 1.13 s against raw TCP's 0.66 (its first 450 ms moved 2 MB). 16 MiB
#: covers that link's bandwidth-delay product (15 MB), and is half of ``max_window``.
DEFAULT_INITIAL_CREDIT = 16 * 1024 * 1024
#: Objects an object-mode reader keeps in flight. One object is one chunk of credit, and small
#: JSON objects make a window of 8 a round-trip limit, not a memory limit: measured
#: (benchmarks/objects.py, loopback) 4,700 msg/s at 8, 7,600 at 32, 12,500 at 128, 13,800 at 512,
#: against 17,600 for plain python-socketio emits. 128 objects stay within the memory a byte
#: stream's 4 x 512 KiB window allows as long as objects average under 16 KiB.
DEFAULT_OBJECT_WINDOW = 128
#: Most objects a writer packs into one ``$stream-write`` toward a sio_stream peer (object-batch).
MAX_OBJECT_BATCH = 64

#: Streams one connection may hold: a peer cannot make us keep more state than this.
DEFAULT_MAX_STREAMS = 1000
#: Largest chunk a reader accepts. Our writers send 512 KiB; JavaScript writers send what their
#: application wrote, and python-socketio's 1,000,000-byte message limit stops most before this.
DEFAULT_MAX_READ_CHUNK = 1024 * 1024
#: Streams one event (or ack) may carry.
DEFAULT_MAX_PLACEHOLDERS = 100
#: The connection's memory budget: bytes received and not yet read plus bytes of credit granted
#: and not yet arrived, over all its streams (byte chunks and objects at their JSON size). 32
#: full stream windows of 2 MiB; eight connections filling it stay within the process budget
#: (512 MiB, see _budget.py). Measured (benchmarks/hostile.py): a hostile client flooding 20
#: object streams of 900 kB strings now holds the server at this, where it reached 2.2 GiB.
DEFAULT_MAX_BUFFERED = 64 * 1024 * 1024
#: Credit outstanding over all streams of a connection (HTTP/2's connection window), in bytes.
#: Two full stream windows: one stream alone keeps its whole window in flight (single-stream
#: and 20 ms RTT throughput unchanged), while a stream opened beside bulk ones waits behind at
#: most this much data instead of every bulk window (measured in benchmarks/concurrency.py).
DEFAULT_CONNECTION_WINDOW = 4 * 1024 * 1024
#: Bytes reserved per credit before anything arrived, where the writer does not promise a chunk
#: size: a JavaScript writer's chunk is whatever its application wrote (64 KiB is Node's
#: default highWaterMark for files), an object's size is unknown (most are small). Each grows
#: to the largest chunk (or object) seen on the stream.
INITIAL_BYTE_CREDIT = 64 * 1024
INITIAL_OBJECT_CREDIT = 1024
#: Credits an object-mode stream gets before its first object arrived. An object's size is
#: bounded only by the message limit, so 128 credits of 1 KiB guessed let a peer send 128 huge
#: objects before the guess is corrected (refused for the budget, but the server still reads
#: and parses them all). 8, like a byte stream's window; the rest follows the first object.
PROBE_CREDITS = 8
#: Reads outstanding at once toward a writer that did not announce batch-read (JavaScript): it
#: remembers surplus reads as one pending read, so it never uses more than two (one being
#: written, one pending). More would be credit it forgets, holding memory reservations (and,
#: under a full connection window, starving the streams whose next read waits behind them).
#: The window still bounds what is buffered; the rest of it is granted as chunks arrive.
PLAIN_CREDITS = 2
#: A stream nobody reads or writes for this long fails: it holds a window, a registry entry and
#: perhaps a blocked writer. Ten minutes, so that only abandoned streams meet it.
DEFAULT_IDLE_TIMEOUT = 600.0

#: Features this implementation announces in its ``$stream-hello``.
FEATURE_BATCH_READ = "batch-read"  # one $stream-read may grant several chunks (count argument)
FEATURE_UNACKED_WRITE = "unacked-write"  # writes carry no ack; $stream-end carries one instead
#: An object-mode $stream-write may carry a list of several objects (encoding ``$objects``),
#: spending one credit per object: per-packet cost, not bytes, bounds small-object streams.
FEATURE_OBJECT_BATCH = "object-batch"
FEATURE_CLAIM = "claim"  # a read granting 0 chunks says "the stream you returned arrived"
#: A handler that failed answers the event's ack with ``{"$stream-error": message}`` (the
#: only value of the ack), so that the caller can tell a failure from an empty reply.
FEATURE_ERROR_REPLY = "error-reply"
#: A byte-mode writer never sends a chunk larger than the ``size`` of the reader's last
#: ``$stream-read``, so the reader can reserve exactly that much memory per credit.
FEATURE_READ_SIZE = "read-size"
#: A byte stream's writer hashes what it sends: its first ``$stream-write`` carries a fourth
#: argument ``{"digest": name}``, its ``$stream-end`` a second one ``{name: hexdigest}``; the
#: reader compares before it reports the end and answers the end's ack with
#: ``{"integrity": message}`` on a mismatch. Needs ``unacked-write`` (the end's ack).
FEATURE_DIGEST = "digest"
#: This side hashes and checks ``blake3`` digests too (the ``blake3`` package is installed). A
#: writer asked for the ``"auto"`` digest (``send_file()``'s default) uses blake3 toward a peer
#: that announced it, sha256 otherwise: blake3 hashed 6.3 GB/s on one core of the project's
#: machine against sha256's 1.7 GB/s (1 MiB updates, SHA extensions), and a verified file
#: transfer pays its digest on both sides.
FEATURE_DIGEST_BLAKE3 = "digest-blake3"
#: Whether the optional ``blake3`` package can be imported (a dependency, but a peer or an
#: install without it still verifies with sha256).
BLAKE3_AVAILABLE = importlib.util.find_spec("blake3") is not None
#: Credit beyond a reader's window is a limit, not a sign that data was accepted: the writer
#: counts progress from acknowledgements, ``consumed`` reports or its own writes, never from
#: credit. Only toward a writer that announced it does a reader's window grow (see _tuning.py):
#: a writer that counted credit as progress (our JavaScript client's uploads before
#: ``consumed``) would run ahead of the reader.
FEATURE_WINDOW_GROWTH = "window-growth"
#: Every batched ``$stream-read`` carries a fourth argument ``{"consumed": N}``: the credits
#: (chunks, or objects) the reader's application has consumed on that stream so far. Credit is
#: then only a limit; a writer counts what was accepted from ``N`` (our JavaScript client's
#: upload progress), which lets it announce window-growth too. Needs batch-read (the count).
FEATURE_CONSUMED = "consumed"
#: Each hello carries ``"credit": {"bytes": B, "objects": N}``, the most unused credit this side's
#: writer accepts per stream (see _window.CreditLimit and :func:`credit_limit`); a reader keeps
#: its windows within the peer's, and a writer fails a stream whose reader grants beyond its own
#: (RemoteProtocolError): credit is what lets a writer queue data for the transport.
FEATURE_CREDIT_LIMIT = "credit-limit"
CREDIT_LIMIT_KEY = "credit"
#: The hello carries ``"initial": {"credits": N, "size": S}``: the peer's writer may put N credits
#: of S bytes on the first byte stream it creates, before any ``$stream-read`` (QUIC's
#: initial_max_stream_data); the stream's placeholder says how many it took
#: (``{"$stream": id, "credit": k}``). See _initial.py.
FEATURE_INITIAL_CREDIT = "initial-credit"
INITIAL_KEY = "initial"
#: Once its application ended a byte stream, a writer's ``$stream-write`` carries ``{"left": N}``
#: (its fourth argument, beside a digest announcement): the bytes left after this chunk (QUIC's
#: final size). Toward such a writer a reader's streams take the connection window in turns,
#: each sized to what is left (see _turns.py).
FEATURE_FINAL_SIZE = "final-size"
#: Session resume after a dropped transport (see _resume.py): the client's hello carries a
#: secret token, each side reports per stream what it received and the credit it holds, and
#: each writer replays what the reader did not get. Batched reads carry the reader's received
#: count in their fourth argument (``{"received": N}``, beside ``consumed``), acknowledging data
#: so the writer can drop what it kept. Announced only by
#: a socket with a ``resume_timeout`` (never by default in the core: the asyncio ``ss()`` sets it).
FEATURE_RESUME = "resume"
#: Seconds both ends keep a dropped connection's streams for its client to come back: long
#: enough for python-socketio's reconnection (about 1 s, at most 5 s between attempts by
#: default) and a mobile network change, short enough that a client that is gone frees its
#: streams and handlers soon.
DEFAULT_RESUME_TIMEOUT = 30.0
#: Sessions a server socket keeps suspended at once: beyond it a dropped connection fails its
#: streams at once, as without resume (what a suspended session holds stays in the budgets).
DEFAULT_MAX_SUSPENDED = 1000
PROTOCOL_VERSION = 1
OUR_FEATURES = frozenset(
    {
        FEATURE_BATCH_READ,
        FEATURE_UNACKED_WRITE,
        FEATURE_OBJECT_BATCH,
        FEATURE_CLAIM,
        FEATURE_ERROR_REPLY,
        FEATURE_READ_SIZE,
        FEATURE_DIGEST,
        FEATURE_WINDOW_GROWTH,
        FEATURE_CONSUMED,
        FEATURE_CREDIT_LIMIT,
        FEATURE_FINAL_SIZE,
        FEATURE_INITIAL_CREDIT,
    }
    | ({FEATURE_DIGEST_BLAKE3} if BLAKE3_AVAILABLE else set())
)
#: Digest algorithms a stream may use (hashlib names, and ``blake3`` when its package is
#: installed). sha256 is the one every digest peer knows: on the project's machine (x86-64 with
#: SHA extensions) it hashed 2.0 GB/s against blake2b's 1.4 GB/s (256 KiB updates); blake2b wins
#: only on CPUs without them; blake3 beats both, where the peer has it (``"auto"``).
DIGESTS = frozenset({"sha256", "blake2b"} | ({"blake3"} if BLAKE3_AVAILABLE else set()))
#: The digest name that picks blake3 toward a peer that announced ``digest-blake3``, else sha256.
AUTO_DIGEST = "auto"
#: Key of the one value of a ``$stream-end`` ack that reports a digest mismatch.
INTEGRITY_KEY = "integrity"
#: Key of a ``$stream-write``'s fourth argument (negotiated ``final-size``).
LEFT_KEY = "left"
#: Key of a primed stream's ``$stream-end`` value (negotiated ``initial-credit``): the bytes its
#: writer's application wrote, the stream's final size (see _early.py).
FINAL_SIZE_KEY = "size"
#: Key of the fourth argument of a ``$stream-read`` (negotiated ``consumed``).
CONSUMED_KEY = "consumed"
#: Key of a read's report that says how many units (bytes, or objects) the reader accepted on
#: the stream so far (negotiated ``resume``).
RECEIVED_KEY = "received"


@dataclass
class CoreConfig:
    """Settings of one connection's core (see the README for how the defaults were chosen)."""

    window: int = DEFAULT_WINDOW
    #: The read window of object-mode streams (in objects).
    object_window: int = DEFAULT_OBJECT_WINDOW
    max_chunk: int = DEFAULT_MAX_CHUNK
    force_base64: bool = False
    #: Most credits a writer keeps per stream from a peer that did not announce credit-limit:
    #: more fail the stream of a sio_stream peer, and are dropped from a JavaScript one.
    max_credit: int = 1024
    #: Limits on what a peer can make us hold. Exceeding one fails the offending stream (or
    #: every stream of the offending event) with a ``$stream-error``, never the connection.
    #: A reader's memory is bounded by ``window * max_read_chunk`` bytes per byte stream.
    max_streams: int = DEFAULT_MAX_STREAMS
    max_read_chunk: int = DEFAULT_MAX_READ_CHUNK
    max_placeholders: int = DEFAULT_MAX_PLACEHOLDERS
    #: The connection's memory budget (bytes held unread plus credit outstanding, byte chunks
    #: and objects alike): credit is granted only as far as it fits, and a chunk larger than its
    #: credit's reservation that does not fit fails its stream.
    max_buffered: int = DEFAULT_MAX_BUFFERED
    #: Most bytes of credit outstanding over the connection's streams (see DEFAULT_CONNECTION_WINDOW).
    connection_window: int = DEFAULT_CONNECTION_WINDOW
    #: The account shared by every connection of the process (``None``: the default one, see
    #: :func:`sio_stream.process_budget`).
    process_budget: Budget | None = None
    #: Seconds a registered stream may go without any activity before it fails (``None``:
    #: never). The core only counts sweeps; the glue runs them on a timer.
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    #: Most bytes a byte stream's read window grows to (see DEFAULT_MAX_WINDOW); ``window`` x
    #: ``max_chunk`` or less: the window never grows.
    max_window: int = DEFAULT_MAX_WINDOW
    #: Bytes of initial credit offered to the peer's first byte stream (see
    #: DEFAULT_INITIAL_CREDIT, the value for a long link); within ``max_window`` and half the
    #: connection's shared pool. 0 (the default, also of ``ss()``, which takes
    #: ``initial_credit=``): no offer, though our writer still takes the peer's.
    initial_credit: int = 0
    features: frozenset[str] = field(default=OUR_FEATURES)
    #: Seconds a dropped connection's streams wait for the client to come back (negotiated
    #: ``resume``; 0: they fail at once). ``features`` must include FEATURE_RESUME for it to be used.
    resume_timeout: float = 0.0
    #: Seconds, for the round trips that tune windows (the core reads no clock of its own).
    clock: Callable[[], float] = time.monotonic


def credit_limit(config: CoreConfig) -> CreditLimit:
    """The most unused credit our writer accepts per stream (announced with credit-limit): the
    largest window a reader with our settings ever opens, so that two peers with the same
    settings never come near it; 32 MiB of bytes by default, and ``max_credit`` objects."""
    return CreditLimit(
        max(config.max_window, config.window * config.max_chunk), max(config.max_credit, config.object_window)
    )


def floor_bytes(config: CoreConfig) -> int:
    """Bytes of each stream's floor (see :mod:`sio_stream.core._budget`): half the connection's
    budget shared by ``max_streams`` floors, and no more than a chunk. With the defaults 32 KiB:
    every one of 1,000 streams keeps one credit of 32 KiB within reach, and half the budget
    (32 MiB) stays for windows that grow."""
    raw = min(config.max_chunk, config.max_buffered // (2 * max(1, config.max_streams)))
    return raw - raw % 1024 if raw >= 1024 else max(0, raw)
