"""Downloads to a sync ``socketio.Client``: websocket frames read whole, not 16 KiB at a time.

python-engineio's sync client reads its websocket through websocket-client, whose frame buffer
asks the socket for at most 16,384 bytes per ``recv()`` and reads ahead that much: a 512 KiB
chunk is 32 system calls, 32 small byte strings, and a ``b"".join`` that copies them into a
fresh 512 KiB object while holding the GIL. A stream's reader keeps a window of chunks alive,
so glibc hands their memory back to the kernel as they are freed and the join page-faults
its way through fresh pages every time (about 5,500 faults per 64 MiB downloaded, against 200
for hand-rolled acked emits, whose callback frees each chunk at once): profiled with py-spy's
``--gil``, the join was half of the receive loop's GIL time in a stream's download, 8% in the
hand-rolled one, and it kept the reader thread from running meanwhile.

:class:`WholeReads` asks the socket for exactly what the frame still needs, in one call (at most
:data:`MOST_AT_ONCE`): CPython's ``recv(n)`` writes straight into the new byte string with the
GIL released, so a payload the kernel already holds whole arrives as the one object that goes
up the stack, with no copy; a payload that comes in pieces is joined once. No read-ahead past
the part of the frame asked for: a small frame costs two calls instead of sharing one, which
is nothing beside python-socketio's work per message. Errors, timeouts and partial frames are
websocket-client's own: every read still goes through its ``recv`` function, and pieces read
before a timeout stay in the buffer for the next call, as there.

websocket-client also checks every text frame's UTF-8 in Python, a byte at a time (unless the
optional wsaccel is installed): a stream's ``$stream-write`` events carry a 36-character id, and
that check was 8% of the receive loop's time in the interpreter. ``recv()`` decodes every text
message with ``bytes.decode("utf-8")`` right after, in C, which refuses the same invalid bytes
(python-engineio then drops the connection, as it does for websocket-client's own error), so
:func:`configure` turns the Python check off unless the application set
``skip_utf8_validation`` itself.

:func:`configure` makes one engine.io client's websocket class (websocket-client's, or the one
:mod:`sio_stream.glue._client_masks` gave it) build :class:`WholeReads` frame buffers, through
``websocket_extra_options["class_"]``: nothing global changes, and a client whose application
chose its own class, or a websocket-client that looks otherwise, keeps its own reads.
"""

from __future__ import annotations

from typing import Any

from ..glue import _client_masks as client_masks

#: The most one ``recv()`` asks for: a larger frame is read in pieces of this size and joined
#: (CPython allocates what is asked before the kernel fills it).
MOST_AT_ONCE = 4 * 1024 * 1024
_MARK = "_sio_stream_whole_reads"
_classes: dict[tuple[type, type], type] = {}


def configure(eio: Any) -> bool:
    """Make engine.io client ``eio``'s websocket read frames whole (and leave text frames' UTF-8
    to ``recv()``'s decode); return whether it reads frames whole."""
    options = getattr(eio, "websocket_extra_options", None)
    if not isinstance(options, dict):
        return False
    try:
        import websocket
        from websocket import _abnf
    except ImportError:
        return False
    options.setdefault("skip_utf8_validation", True)  # recv() decodes text, in C, anyway
    base = options.get("class_", websocket.WebSocket)
    if getattr(base, _MARK, False):
        return True
    buffer_base = getattr(_abnf, "frame_buffer", None)
    if not (
        isinstance(base, type)
        and (base is websocket.WebSocket or client_masks.is_ours(base))
        and isinstance(buffer_base, type)
        and callable(getattr(buffer_base, "recv_strict", None))
    ):
        return False
    options["class_"] = whole_reads_class(base, buffer_base)
    return True


def whole_reads_class(base: type, buffer_base: type) -> type:
    """websocket-client's ``WebSocket`` class ``base`` whose instances read through a
    :class:`WholeReads` subclass of ``buffer_base`` (one class per pair)."""
    cls = _classes.get((base, buffer_base))
    if cls is None:
        buffer_class = type("WholeReads", (WholeReads, buffer_base), {})
        base_init: Any = base.__init__  # type: ignore[misc]  # a class of no known shape

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            base_init(self, *args, **kwargs)
            buffer = getattr(self, "frame_buffer", None)
            if type(buffer) is buffer_base:
                buffer.__class__ = buffer_class  # the same state, whole reads from now on

        cls = type(f"{base.__name__}WholeReads", (base,), {"__init__": __init__, _MARK: True})
        _classes[(base, buffer_base)] = cls
    return cls


class WholeReads:
    """websocket-client's ``frame_buffer`` with :meth:`recv_strict` reading exactly what is
    missing (mixed in before the original class, whose ``recv`` and ``recv_buffer`` it uses)."""

    recv: Any
    recv_buffer: list[bytes]

    def recv_strict(self, bufsize: int) -> bytes:
        """The next ``bufsize`` bytes of the connection (fewer only if ``recv`` returns
        something that is not bytes, as websocket-client's own)."""
        if not isinstance(bufsize, int):
            raise ValueError("bufsize must be an integer")
        pieces = self.recv_buffer
        have = sum(map(len, pieces)) if pieces else 0
        while have < bufsize:
            piece = self.recv(min(bufsize - have, MOST_AT_ONCE))
            if not isinstance(piece, bytes):
                break
            pieces.append(piece)  # in place: a timeout on the next piece keeps what came
            have += len(piece)
        if have == bufsize and len(pieces) == 1:
            self.recv_buffer = []
            return pieces[0]
        unified = b"".join(pieces)
        if have <= bufsize:
            self.recv_buffer = []
            return unified
        self.recv_buffer = [unified[bufsize:]]  # only when a buffer came with more in it
        return unified[:bufsize]
