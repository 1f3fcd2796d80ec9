"""The wire vocabulary of socket.io-stream: event names and chunk encodings.

These names are the contract with JavaScript peers (``../shared/PROTOCOL.md``); every module
that speaks to the wire takes them from here.
"""

from __future__ import annotations

from typing import Any, Final

#: An application event that carries streams as placeholders.
STREAM: Final = "$stream"
#: The reading side grants one chunk of credit (``id, size_hint[, count]``).
READ: Final = "$stream-read"
#: One chunk from the writing side (``id, chunk, encoding`` plus an ack).
WRITE: Final = "$stream-write"
#: The writing side is finished (``id``).
END: Final = "$stream-end"
#: The stream failed on the sending side (``id, message``).
ERROR: Final = "$stream-error"
#: sio_stream-only handshake announcing optional features; JavaScript peers ignore it.
HELLO: Final = "$stream-hello"

#: Every event a StreamSocket listens to, in the order of the protocol description.
EVENTS: Final = (STREAM, READ, WRITE, END, ERROR, HELLO)

#: ``encoding`` argument of a binary chunk.
BUFFER: Final = "buffer"
#: ``encoding`` argument of a base64 text chunk (``forceBase64`` peers).
BASE64: Final = "base64"
#: ``encoding`` JavaScript sends with object-mode chunks.
UTF8: Final = "utf8"
#: ``encoding`` of a sio_stream-only object-mode chunk that carries a list of several objects
#: (negotiated feature ``object-batch``; never sent to a peer that did not announce it).
OBJECT_BATCH: Final = "$objects"

#: Key of the one value of an ack that reports a failed handler (negotiated ``error-reply``).
ERROR_REPLY_KEY: Final = "$stream-error"

#: Key that marks a placeholder object.
PLACEHOLDER_KEY: Final = "$stream"
#: A placeholder's initial credit: the credits its writer took of our offer (negotiated
#: ``initial-credit``, see _initial.py).
PLACEHOLDER_CREDIT_KEY: Final = "credit"

#: The message every stream of a dropped connection fails with (as in JavaScript).
CONNECTION_ABORTED: Final = "Connection aborted"


def positive_ints(value: Any, *keys: str) -> tuple[int, ...] | None:
    """The whole numbers of at least 1 under ``keys`` of a hello's object ``value`` (in that
    order), ``None`` when ``value`` is not an object or any of them is missing, not an integer
    (``bool`` is not one) or below 1: a malformed announcement is then ignored as a whole."""
    if not isinstance(value, dict):
        return None
    numbers: list[int] = []
    for key in keys:
        number = value.get(key)
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            return None
        numbers.append(number)
    return tuple(numbers)
