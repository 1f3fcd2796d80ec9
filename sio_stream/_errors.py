"""Errors: one root, split by who is at fault, with anyio's resource-error meanings.

Every exception sio_stream raises is a :class:`StreamError`. Stream I/O errors also inherit
the anyio exception a user of ``anyio.abc.ByteStream`` already catches:

* :class:`StreamClosedError` (``anyio.ClosedResourceError``): *we* closed or destroyed it;
* :class:`StreamBrokenError` (``anyio.BrokenResourceError``): the peer or the connection
  broke it; ``remote`` tells which side raised the error first;
* :class:`StreamEnded` (``anyio.EndOfStream``): clean end, raised by ``receive()`` only;
* :class:`StreamBusyError` (``anyio.BusyResourceError``): two tasks used one direction at once.
"""

from __future__ import annotations

import anyio


class StreamError(Exception):
    """Root of every error sio_stream raises.

    ``remote`` is true when the error was reported by the peer (a ``$stream-error`` it sent),
    false when it arose on this side.
    """

    remote: bool = False
    #: What the peer is told instead of :attr:`message` (see :func:`peer_message`).
    peer_text: str | None = None

    def __init__(self, message: str = "", *, remote: bool = False) -> None:
        super().__init__(message)
        self.remote = remote

    @property
    def message(self) -> str:
        """The error text (for an error from the peer: as it was sent)."""
        return str(self.args[0]) if self.args else ""

    @property
    def wire_message(self) -> str:
        """The text sent to the peer for this error."""
        return self.peer_text if self.peer_text is not None else self.message


class StreamClosedError(StreamError, anyio.ClosedResourceError):
    """The stream was closed or destroyed on this side; no further I/O is possible."""


class StreamBrokenError(StreamError, anyio.BrokenResourceError):
    """The stream failed: the peer sent an error, broke the protocol, or the connection dropped."""


class ConnectionAbortedStreamError(StreamBrokenError):
    """The Socket.IO connection carrying the stream dropped (message ``"Connection aborted"``)."""


class ResumeRefusedError(ConnectionAbortedStreamError):
    """The server refused to resume the session of a dropped connection (an unknown, expired or
    reused token, or a session still in use): its streams failed, as without resume. The new
    connection is up and new streams work on it."""


class RemoteProtocolError(StreamBrokenError):
    """The peer broke the wire protocol (for example a write without credit); the stream failed."""


class IntegrityError(StreamBrokenError):
    """The data that arrived does not match the digest its writer sent (negotiated ``digest``),
    or a stream that took initial credit lost data: what arrived does not add up to the final
    size its writer sent, or its first writes came before its event and could not be held.

    Raised on both ends: the reader that compared, and the writer (``end()`` / ``send_file``)
    told through the end's acknowledgement. Nothing the reader stored may be trusted; the file
    helpers leave no file under the final name.
    """


class StreamEnded(StreamError, anyio.EndOfStream):
    """The readable side ended cleanly; raised by ``receive()``."""


class StreamBusyError(StreamError, anyio.BusyResourceError):
    """Two tasks tried to read (or to write) the same stream at the same time."""


class LocalProtocolError(StreamError, RuntimeError):
    """This side misused the API: sending a stream twice, using a destroyed stream, and so on."""


class InvalidChunkError(StreamError, TypeError):
    """A chunk of the wrong kind for the stream's mode (for example ``str`` objects to a byte stream)."""


class InvalidOptionError(StreamError, ValueError):
    """A stream or socket option has a wrong type or value."""


class StreamTimeoutError(StreamError, TimeoutError):
    """The peer did not acknowledge in time (``StreamSocket.call``)."""


class HandlerError(StreamError):
    """A stream handler failed; its message is meant for the peer.

    Raise it from a handler registered with ``StreamSocket.on`` to refuse an event with a
    message the peer may read: a sio_stream peer's ``call()`` raises ``HandlerError`` with that
    message (``remote`` true), and the streams of the event fail with it. Any other exception
    from a handler reaches the peer only as ``"handler for <event> failed (<type>)"``: its text
    may hold local paths or internals, and is logged here instead.
    """


def peer_message(exc: BaseException | str) -> str:
    """What the peer is told about ``exc``, a local failure the application passed on.

    Text the application chose is sent as it is: a ``str``, a :class:`StreamError`'s message
    (sio_stream's own messages name streams and limits, never local files), any other
    exception's text. An ``OSError`` about a file is the exception: its text names it (``[Errno 2]
    No such file or directory: '/srv/...'``), so the peer gets its description only (``No such
    file or directory``) and the local error keeps the rest. (Exceptions a handler raises
    without choosing to are not passed on at all: see :class:`HandlerError`.)
    """
    if isinstance(exc, str):
        return exc
    if isinstance(exc, StreamError):
        return exc.wire_message
    if isinstance(exc, OSError) and (exc.filename is not None or exc.filename2 is not None):
        return exc.strerror or type(exc).__name__
    return str(exc) or type(exc).__name__
