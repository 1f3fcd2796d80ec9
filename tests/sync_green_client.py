"""A sync python-socketio client with sio_stream.sync under eventlet or gevent, monkey-patched, in a
process of its own (monkey-patching must never reach pytest).

    python tests/sync_green_client.py --mode eventlet|gevent URL basic|drop
    python tests/sync_green_client.py --mode eventlet|gevent URL member [--leave-after N]

``basic`` runs against tests/sync_peer.py: an upload (``sha``), a download (``download``) and an
echo (``echo``), each checked by sha256, from green threads. ``drop`` runs its ``drop``: the server
disconnects mid-transfer and both streams must fail with ``ConnectionAbortedStreamError``.
``member`` is a member of a room for the matrix tests: it prints ``READY <sid>``, reads every
``file`` stream it gets (``file(stream, meta, ack)``), prints ``GOT <size> <sha256>`` and acks the
digest; with ``--leave-after N`` it disconnects once N bytes of a stream arrived instead (it prints
``LEFT <error class>`` once its stream failed). It exits when stdin closes (at once, with
no disconnect: the test is over).

Each check prints ``OK <name>``; any failure prints ``FAILED <repr>`` and exits 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
TIMEOUT = 60


def say(line: str) -> None:
    print(line, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("eventlet", "gevent"), required=True)
    parser.add_argument("url")
    parser.add_argument("scenario", choices=("basic", "drop", "member"))
    parser.add_argument("--leave-after", type=int, default=None)
    args = parser.parse_args()
    # Before anything else is imported: the whole point of these modes.
    if args.mode == "eventlet":
        import eventlet

        eventlet.monkey_patch()
    else:
        from gevent import monkey

        monkey.patch_all()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    try:
        if args.scenario == "basic":
            basic(args.url)
        elif args.scenario == "drop":
            drop(args.url)
        else:
            member(args.url, args.leave_after, args.mode)
    except BaseException as exc:
        say(f"FAILED {exc!r}")
        return 1
    return 0


def connect(url: str) -> tuple[Any, Any]:
    import socketio

    from sio_stream import sync

    client = socketio.Client(reconnection=False)
    streams = sync.ss(client)
    return client, streams


def sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)
    say(f"OK {what}")


def basic(url: str) -> None:
    import os
    import threading

    from sio_stream import sync

    client, streams = connect(url)
    echoed: dict[str, bytes] = {}
    echo_done = threading.Event()  # monkey-patched: a green event

    @streams.on("echo")
    def on_echo(stream: sync.IOStream) -> None:
        echoed["data"] = stream.read(timeout=TIMEOUT)
        echo_done.set()

    client.connect(url, transports=["websocket"], wait_timeout=TIMEOUT)
    data = os.urandom(4 * MiB + 5)

    def write(stream: sync.IOStream, payload: bytes) -> None:
        for offset in range(0, len(payload), 100_000):
            stream.write(payload[offset : offset + 100_000], timeout=TIMEOUT)
        stream.end(timeout=TIMEOUT)

    up = sync.create_stream()
    reply = streams.call("sha", up, timeout=TIMEOUT, writer=lambda: write(up, data))
    check(reply == (sha(data), len(data)), "upload")

    down, digest = streams.call("download", {"size": 3 * MiB}, timeout=TIMEOUT)
    check(sha(down.read(timeout=TIMEOUT)) == digest, "download")

    out = sync.create_stream()
    streams.emit("echo", out)
    write(out, data[:MiB])
    check(echo_done.wait(TIMEOUT) and echoed["data"] == data[:MiB], "echo")

    client.disconnect()
    check(streams.stream_count() == 0, "nothing left")


def drop(url: str) -> None:
    import threading

    from sio_stream import ConnectionAbortedStreamError, StreamError, sync

    client, streams = connect(url)
    client.connect(url, transports=["websocket"], wait_timeout=TIMEOUT)
    up = sync.create_stream()
    failures: dict[str, BaseException] = {}
    written = threading.Event()

    def write_up() -> None:
        try:
            while True:
                up.write(b"u" * 65536, timeout=TIMEOUT)
        except StreamError as exc:
            failures["up"] = exc
        written.set()

    client.start_background_task(write_up)
    down = streams.call("drop", up, timeout=TIMEOUT)
    try:
        while down.read(65536, timeout=TIMEOUT):
            pass
    except StreamError as exc:
        failures["down"] = exc
    check(written.wait(TIMEOUT), "the writer stopped")
    check(
        all(isinstance(failures.get(name), ConnectionAbortedStreamError) for name in ("up", "down")),
        "both streams aborted",
    )
    check(streams.stream_count() == 0, "nothing left")


def member(url: str, leave_after: int | None, mode: str) -> None:
    import os

    from sio_stream import StreamError, sync

    client, streams = connect(url)

    @streams.on("file")
    def on_file(stream: sync.IOStream, meta: Any) -> str | None:
        import hashlib

        digest = hashlib.sha256()
        size = 0
        leaving = False
        try:
            for chunk in stream:
                digest.update(chunk)
                size += len(chunk)
                if leave_after is not None and size >= leave_after and not leaving:
                    leaving = True  # and read on: the stream must fail
                    client.start_background_task(client.disconnect)
        except StreamError as exc:
            say(f"LEFT {type(exc).__name__}")
            return None
        say(f"GOT {size} {digest.hexdigest()}")
        return digest.hexdigest()

    client.connect(url, transports=["websocket"], wait_timeout=TIMEOUT)
    say(f"READY {client.get_sid()}")
    wait_for_stdin_to_close(mode)
    # No goodbye: a sync client's disconnect takes seconds, and the test is over.
    os._exit(0)


def wait_for_stdin_to_close(mode: str) -> None:
    """Park this green thread until stdin closes. A plain read would block the whole hub: neither
    eventlet nor gevent patches ``sys.stdin``; gevent's patched ``select`` waits for a pipe, and
    eventlet's hub does through ``trampoline`` (its patched ``select`` missed the pipe's end)."""
    import os

    fd = sys.stdin.fileno()
    while True:
        if mode == "eventlet":
            from eventlet.hubs import trampoline

            trampoline(fd, read=True)
        else:
            import select

            select.select([fd], [], [])
        if not os.read(fd, 4096):
            return


if __name__ == "__main__":
    sys.exit(main())
