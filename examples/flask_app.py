"""A Flask application with Flask-SocketIO: uploads and downloads over sio_stream's sync API.

The server stores uploads under a temporary folder and serves them back; a sync python-socketio
client uploads a file, downloads it again and checks both sha256s.

Run: python examples/flask_app.py
"""

import hashlib
import os
import tempfile
import threading
from pathlib import Path

import socketio
from flask import Flask, request
from flask_socketio import SocketIO
from werkzeug.serving import WSGIRequestHandler, make_server

from sio_stream.sync import create_stream, receive_file, send_file, ss


def create_app(folder: Path) -> Flask:
    app = Flask(__name__)
    socketio_app = SocketIO(app, async_mode="threading")
    streams = ss(socketio_app)

    @streams.on("upload")
    def upload(stream, meta: dict) -> dict:
        # Never trust a client's file name: keep only its last component.
        digest = hashlib.sha256()
        size = receive_file(stream, folder / Path(meta["name"]).name, max_bytes=10_000_000, hasher=digest)
        print(f"server stored {size} bytes from {request.sid}")
        return {"size": size, "sha256": digest.hexdigest()}

    @streams.on("download")
    def download(name: str):
        path = folder / Path(name).name
        stream = create_stream()
        # Return the stream in the ack at once; the file is written in a background thread.
        socketio_app.start_background_task(send_file, stream, path)
        return stream, path.stat().st_size

    return app


class QuietHandler(WSGIRequestHandler):
    """Werkzeug's development server logs every request, and reads the client's WebSocket close
    frame as a malformed request once a connection ends (a "400 Bad request syntax" line): keep
    the example's output to its own lines. Deploy with gevent (examples/flask_gevent/server.py),
    eventlet or gunicorn instead: see docs/guides/sync.md, "Running a Flask-SocketIO server"."""

    def log(self, type: str, message: str, *args) -> None:
        pass


def main() -> None:
    with tempfile.TemporaryDirectory() as client_dir, tempfile.TemporaryDirectory() as server_dir:
        data = os.urandom(3_000_000)
        source = Path(client_dir, "photo.jpg")
        source.write_bytes(data)

        server = make_server(  # port 0: any free port
            "127.0.0.1", 0, create_app(Path(server_dir)), threaded=True, request_handler=QuietHandler
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}"

        client = socketio.Client()
        client_streams = ss(client)
        client.connect(url, transports=["websocket"])

        # Upload: the ack comes once the server stored the file, so `writer` sends it meanwhile
        # (in a background thread); if either fails, call() raises one error and stops both.
        stream = create_stream()
        sending = lambda: send_file(stream, source)  # noqa: E731 (a writer takes no arguments)
        stored = client_streams.call("upload", stream, {"name": "photo.jpg"}, timeout=30, writer=sending)

        # Download it back.
        stream, size = client_streams.call("download", "photo.jpg", timeout=30)
        target = Path(client_dir, "copy.jpg")
        receive_file(stream, target, size=size, timeout=30)

        expected = hashlib.sha256(data).hexdigest()
        same = stored["sha256"] == expected and hashlib.sha256(target.read_bytes()).hexdigest() == expected
        print("flask ok: sha256 matches" if same else "flask FAILED: sha256 differs")

        client.disconnect()
        server.shutdown()


if __name__ == "__main__":
    main()
