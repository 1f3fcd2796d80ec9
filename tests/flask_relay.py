"""A Flask-SocketIO server (threading mode) written with sio_stream.sync that relays an upload to a
room, for the tests and for benchmarks/sync.py:

* ``join`` (ack ``True``): the client joins the room ``lobby``;
* ``share(stream)``: the stream is relayed to every member of ``lobby`` but the sender as
  ``file(stream, meta)``; the ack is ``{sid: that member's ack, or "error: ..."}``;
* ``sha(stream)`` (ack ``[sha256, size]``): the baseline, an upload read whole by the server.

    python tests/flask_relay.py     # prints LISTENING <port>, serves until terminated
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

ROOM = "lobby"
#: Seconds a relay may go without progress (a generous bound for a busy machine).
PATIENCE = 120


def make_app() -> tuple[Any, Any, Any]:
    """(the Flask app, its ``SocketIO``, the sync ``StreamSocket``)."""
    from flask import Flask, request
    from flask_socketio import SocketIO, join_room

    from sio_stream import sync

    app = Flask("flask-relay")
    socketio_app = SocketIO(app, async_mode="threading", max_http_buffer_size=4 * 2**20)
    streams = sync.ss(socketio_app)

    @socketio_app.on("join")
    def join() -> bool:
        join_room(ROOM)
        return True

    @streams.on("share")
    def share(stream: sync.IOStream) -> dict[str, Any]:
        acks = streams.call(
            "file", stream, {"from": request.sid}, to=ROOM, skip_sid=request.sid, timeout=PATIENCE
        )
        return {sid: f"error: {ack}" if isinstance(ack, BaseException) else ack for sid, ack in acks.items()}

    @streams.on("sha")
    def sha(stream: sync.IOStream) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        for chunk in stream:
            digest.update(chunk)
            size += len(chunk)
        return digest.hexdigest(), size

    return app, socketio_app, streams


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.sync_peer import leave_with_parent, listen

    app, socketio_app, _ = make_app()
    leave_with_parent(socketio_app.server)
    listen("threading", app)


if __name__ == "__main__":
    main()
