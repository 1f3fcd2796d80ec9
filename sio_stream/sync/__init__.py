"""The sync API: streams over ``socketio.Server``, ``socketio.Client`` and Flask-SocketIO.

The same names as the async API, with blocking calls, on the same protocol core::

    from sio_stream.sync import ss, create_stream, send_file, receive_file, pipe

    streams = ss(sio)   # a socketio.Server, a socketio.Client or a flask_socketio.SocketIO

    @streams.on("upload")
    def upload(sid, stream, meta):   # Flask-SocketIO: upload(stream, meta), with request.sid
        for chunk in stream:
            ...
        return {"ok": True}          # the ack

Errors are those of :mod:`sio_stream` (``StreamBrokenError``, ``StreamTimeoutError``, ...).
"""

from ..files._common import TransferIncomplete, TransferTooLarge
from ._files import pipe, receive_file, send_file
from ._socket import StreamSocket, ss
from ._stream import IOStream, RawStream, create_stream

__all__ = [
    "IOStream",
    "RawStream",
    "StreamSocket",
    "TransferIncomplete",
    "TransferTooLarge",
    "create_stream",
    "pipe",
    "receive_file",
    "send_file",
    "ss",
]
