"""A sync sio_stream server in a process of its own, for the tests of the eventlet and gevent
modes and of the interop with JavaScript clients (monkey-patching must never reach pytest).

    python tests/sync_peer.py --mode threading|eventlet|gevent --host socketio|flask [--max-chunk N]
        [--websocket-compression]

It prints ``LISTENING <port>`` once it accepts connections, ``DROPPED <json>`` when the two
streams of ``drop`` have failed, and ``FAILED <repr>`` for any unexpected error in a handler or
a background task; it runs until terminated. The handlers play node/server.js's role for the
scenarios the tests run (``sha``, ``file``, ``download``, ``echo``, ``drop``; ``join`` and
``share``, a relay to a room).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

DROP_AFTER = 262144


def monkey_patch(mode: str) -> None:
    # Before anything else is imported: the whole point of these modes.
    if mode == "eventlet":
        import eventlet

        eventlet.monkey_patch()
    elif mode == "gevent":
        from gevent import monkey

        monkey.patch_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("threading", "eventlet", "gevent"), default="threading")
    parser.add_argument("--host", choices=("socketio", "flask"), default="socketio")
    parser.add_argument("--max-chunk", type=int, default=None)
    parser.add_argument("--websocket-compression", action="store_true", help="ss(websocket_compression=True)")
    parser.add_argument("--initial-credit", type=int, default=0, help="ss(initial_credit=N)")
    args = parser.parse_args()
    monkey_patch(args.mode)
    serve(args.mode, args.host, args.max_chunk, args.websocket_compression, args.initial_credit)


def say(line: str) -> None:
    print(line, flush=True)


def serve(
    mode: str, host: str, max_chunk: int | None, websocket_compression: bool = False, initial_credit: int = 0
) -> None:
    import hashlib
    import json
    import os
    from collections.abc import Callable

    import socketio

    from sio_stream import StreamError, sync

    options: dict[str, Any] = {} if max_chunk is None else {"max_chunk": max_chunk}
    options["websocket_compression"] = websocket_compression
    options["initial_credit"] = initial_credit
    if host == "flask":
        from flask import Flask, request
        from flask_socketio import SocketIO

        app: Any = Flask("sync-peer")
        # A blank document of this origin, for a browser to open websockets from.
        app.add_url_rule("/", "blank", lambda: "<!doctype html><title>sync peer</title>")
        sio: Any = SocketIO(app, async_mode=mode, max_http_buffer_size=16 * 2**20)
        streams = sync.ss(sio, **options)
        server: Any = sio.server

        def on(name: str) -> Callable[[Callable[..., Any]], Any]:
            def register(handler: Callable[..., Any]) -> Any:
                return streams.on(name, lambda *args: handler(request.sid, *args))

            return register
    else:
        sio = socketio.Server(async_mode=mode, max_http_buffer_size=16 * 2**20)
        app = socketio.WSGIApp(sio)
        streams = sync.ss(sio, **options)
        server = sio

        def on(name: str) -> Callable[[Callable[..., Any]], Any]:
            return lambda handler: streams.on(name, handler)

    def spawn(task: Callable[..., Any], *args: Any) -> None:
        def run() -> None:
            try:
                task(*args)
            except Exception as exc:
                say(f"FAILED {exc!r}")

        sio.start_background_task(run)

    def write_bytes(stream: sync.IOStream, data: bytes, piece: int = 65536) -> None:
        for offset in range(0, len(data), piece):
            stream.write(data[offset : offset + piece], timeout=60)
        stream.end(timeout=60)

    def size_of(meta: Any) -> int:
        return int(meta["size"] if isinstance(meta, dict) else meta)

    def echoed(value: Any) -> Any:
        if isinstance(value, sync.IOStream):
            out = sync.create_stream(object_mode=value.object_mode)
            spawn(sync.pipe, value, out)
            return out
        if isinstance(value, list):
            return [echoed(v) for v in value]
        if isinstance(value, dict):
            return {k: echoed(v) for k, v in value.items()}
        return value

    @on("sha")  # sha(stream, ack): ack(sha, byteCount) of everything read
    def sha(sid: str, stream: sync.IOStream) -> Any:
        digest = hashlib.sha256()
        size = 0
        try:
            for chunk in stream:
                digest.update(chunk)
                size += len(chunk)
        except StreamError as exc:
            return f"error: {exc.message}"
        return digest.hexdigest(), size

    @on("file")  # file(stream, {size}, ack): write size random bytes, ack(sha) once written
    def file(sid: str, stream: sync.IOStream, meta: Any) -> str:
        data = os.urandom(size_of(meta))
        write_bytes(stream, data)
        return hashlib.sha256(data).hexdigest()

    @on("download")  # download({size}, ack): ack(stream, sha), then write size random bytes
    def download(sid: str, meta: Any) -> Any:
        data = os.urandom(size_of(meta))
        stream = sync.create_stream()
        spawn(write_bytes, stream, data)
        return stream, hashlib.sha256(data).hexdigest()

    @on("echo")  # echo(...args): emit echo back, streams replaced by piped copies
    def echo(sid: str, *args: Any) -> None:
        streams.emit("echo", *echoed(list(args)), to=sid)

    @on("join")  # join(room, ack): the client joins room; ack(true)
    def join(sid: str, room: str) -> bool:
        server.enter_room(sid, room)
        return True

    @on("share")  # share(stream, room, ack): relay stream to the room's others ("relayed")
    def share(sid: str, stream: sync.IOStream, room: str) -> Any:
        acks = streams.call("relayed", stream, to=room, skip_sid=sid, timeout=60)
        # ack({sid: that member's ack, or the error that stands for it})
        return {key: f"error: {v}" if isinstance(v, BaseException) else v for key, v in acks.items()}

    @on("drop")  # drop(up, ack): ack(down); disconnect once DROP_AFTER bytes of up arrived
    def drop(sid: str, up: sync.IOStream) -> Any:
        down = sync.create_stream()
        failures: dict[str, str] = {}

        def read_up() -> None:
            received = 0
            try:
                while chunk := up.read(65536, timeout=60):
                    received += len(chunk)
                    if received >= DROP_AFTER and "cut" not in failures:
                        failures["cut"] = str(received)
                        server.disconnect(sid)
            except StreamError as exc:
                failures["up"] = exc.message
            report()

        def write_down() -> None:
            try:
                while True:
                    down.write(b"d" * 65536, timeout=60)
            except StreamError as exc:
                failures["down"] = exc.message
            report()

        def report() -> None:
            if "up" in failures and "down" in failures:
                say("DROPPED " + json.dumps({"up": failures["up"], "down": failures["down"]}))

        spawn(read_up)
        spawn(write_down)
        return down

    leave_with_parent(sio)
    listen(mode, app)


def leave_with_parent(sio: Any) -> None:
    """Exit once the process that started us is gone (a killed run never terminates us)."""
    import os

    def watch() -> None:
        parent = os.getppid()
        while os.getppid() == parent:
            sio.sleep(1)
        os._exit(0)

    sio.start_background_task(watch)


def listen(mode: str, app: object) -> None:
    """Serve ``app`` on 127.0.0.1, any free port, with the server of the async mode."""
    if mode == "eventlet":
        import eventlet
        import eventlet.wsgi

        sock = eventlet.listen(("127.0.0.1", 0))
        say(f"LISTENING {sock.getsockname()[1]}")
        eventlet.wsgi.server(sock, app, log_output=False)
    elif mode == "gevent":
        from gevent.pywsgi import WSGIServer

        server = WSGIServer(("127.0.0.1", 0), app, log=None)
        server.start()
        say(f"LISTENING {server.server_port}")
        server.serve_forever()
    else:
        from werkzeug.serving import make_server

        threaded = make_server("127.0.0.1", 0, app, threaded=True)  # type: ignore[arg-type]
        say(f"LISTENING {threaded.server_port}")
        threaded.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
