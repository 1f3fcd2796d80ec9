"""A Flask-SocketIO application served as in production: by gevent's WSGI server, not Werkzeug's.

In Flask-SocketIO's default threading mode, ``socketio_app.run(app)`` runs Werkzeug's development
server, and refuses to start it when stdin is not a terminal (a service, a container, ``nohup``):
"RuntimeError: The Werkzeug web server is not designed to run in production". In gevent mode
the same ``run()`` serves with gevent's ``pywsgi`` server (WebSocket through simple-websocket)
and starts anywhere. The handlers are the same in every mode.

Run: python examples/flask_gevent/server.py [port] [folder]   (default 5000 and ./uploads)
     then upload with a sync or asyncio client (docs/guides/sync.md); the test suite runs this
     file so, with no terminal (tests/test_flask_gevent.py).
"""

from gevent import monkey

monkey.patch_all()  # first of all: before anything imports socket, ssl, threading or time

import hashlib  # noqa: E402 (after the monkey-patching, on purpose)
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from flask import Flask  # noqa: E402
from flask_socketio import SocketIO  # noqa: E402

from sio_stream.sync import receive_file, ss  # noqa: E402

app = Flask(__name__)
socketio_app = SocketIO(app, async_mode="gevent")
streams = ss(socketio_app)
uploads = Path(sys.argv[2] if len(sys.argv) > 2 else "uploads")


@streams.on("upload")
def upload(stream, meta: dict) -> dict:
    # Never trust a client's file name: keep only its last component.
    digest = hashlib.sha256()
    size = receive_file(stream, uploads / Path(meta["name"]).name, max_bytes=10**9, hasher=digest)
    return {"size": size, "sha256": digest.hexdigest()}


if __name__ == "__main__":
    uploads.mkdir(exist_ok=True)
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    print(f"serving {uploads} on http://127.0.0.1:{port}", flush=True)
    socketio_app.run(app, host="127.0.0.1", port=port)  # use "0.0.0.0" for every interface
