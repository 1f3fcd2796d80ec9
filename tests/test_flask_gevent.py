"""examples/flask_gevent/server.py run as a user deploys it: its own process, stdin not a
terminal (where Flask-SocketIO's threading-mode run() refuses Werkzeug), and a sync client that
uploads a file over sio_stream (issue 25, point 3)."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import socketio

from sio_stream import sync
from tests.sync_support import eventually

SERVER = Path(__file__).resolve().parent.parent / "examples" / "flask_gevent" / "server.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connected(client: socketio.Client, url: str) -> bool:
    try:
        client.connect(url, transports=["websocket"], wait_timeout=10)
    except socketio.exceptions.ConnectionError:
        return False  # not listening yet
    return True


def test_the_gevent_server_starts_without_a_terminal_and_stores_an_upload(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(SERVER), str(port), str(tmp_path / "uploads")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("serving "), process.stderr
        client = socketio.Client(reconnection=False)
        streams = sync.ss(client)
        eventually(lambda: process.poll() is not None or connected(client, f"http://127.0.0.1:{port}"))
        assert process.poll() is None, "the server exited"
        data = os.urandom(3_000_000)
        source = tmp_path / "photo.jpg"
        source.write_bytes(data)
        stream = sync.create_stream()
        sender = threading.Thread(target=sync.send_file, args=(stream, source))
        sender.start()
        reply = streams.call("upload", stream, {"name": "photo.jpg"}, timeout=60)
        sender.join(60)
        client.disconnect()
        assert reply == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        assert (tmp_path / "uploads" / "photo.jpg").read_bytes() == data
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "RuntimeError" not in stderr and "Traceback" not in stderr, stderr


def test_the_threading_mode_run_refuses_without_a_terminal_as_the_guide_says() -> None:
    # Why the example runs in gevent mode: what the sync guide warns about, checked.
    script = (
        "from flask import Flask\nfrom flask_socketio import SocketIO\n"
        "app = Flask(__name__)\nSocketIO(app, async_mode='threading').run(app, port=0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "RuntimeError: The Werkzeug web server is not designed to run in production" in result.stderr
