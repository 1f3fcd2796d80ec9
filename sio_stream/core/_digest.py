"""The negotiated ``digest`` of a byte stream, the core's side: the writer hashes what it sends
and its end carries the digest; the reader hashes what arrives (or lets the application hash it,
off the event loop) and compares before it reports the end. A mixin of
:class:`~sio_stream.core._core.ProtocolCore`: one concern, kept out of the connection's main flow."""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

from .._errors import IntegrityError, LocalProtocolError, StreamError
from ._config import (
    AUTO_DIGEST,
    DIGESTS,
    FEATURE_DIGEST,
    FEATURE_DIGEST_BLAKE3,
    FEATURE_UNACKED_WRITE,
    INTEGRITY_KEY,
)
from ._state import WriteState
from ._streamcore import PendingReply, StreamCore


def new_hasher(name: str) -> Any:
    """A fresh hasher (``update``, ``hexdigest``) for ``name``, one of :data:`DIGESTS`."""
    if name == "blake3":
        import blake3  # only when a peer and this side announced it: the package is installed

        return blake3.blake3()
    return hashlib.new(name)


class _Core(Protocol):
    """What the digest methods use of the core they are mixed into."""

    peer_features: frozenset[str]

    def fail(
        self, stream: StreamCore, error: StreamError, *, notify: bool = True, keep_inbox: bool = False
    ) -> None: ...

    def _digest_usable(self) -> bool: ...

    def choose_digest(self, stream: StreamCore) -> Any: ...

    def _integrity_failure(self, stream: StreamCore, message: str) -> dict[str, str]: ...


class DigestMixin:
    """The digest methods of :class:`~sio_stream.core._core.ProtocolCore`."""

    def _digest_announced(self: _Core, stream: StreamCore, marker: Any) -> str | None:
        if FEATURE_DIGEST not in self.peer_features:
            return None  # not negotiated: the argument means nothing
        name = marker.get("digest") if isinstance(marker, dict) else None
        if name not in DIGESTS:
            return f"unknown digest {name!r} on stream {stream.id}"
        if stream.digest_writer:
            return None  # this side sends the digest of its own writes
        if stream.digest_name is not None or stream.bytes_received:
            return f"digest announced late on stream {stream.id}"
        stream.digest_name = name
        if not stream.digest_external:
            stream.hasher = new_hasher(name)
        return None

    def _check_end_digest(self: _Core, stream: StreamCore, digest: Any) -> Any:
        """A ``$stream-end`` carrying ``{name: hexdigest}``: ``None`` when it matches (or there
        is nothing to check), a :class:`PendingReply` when the application compares, else the
        integrity ack (the stream failed with :class:`IntegrityError`)."""
        if not isinstance(digest, dict) or len(digest) != 1 or stream.object_mode or stream.digest_writer:
            return None
        ((name, value),) = digest.items()
        if not isinstance(value, str) or name not in DIGESTS:
            return None
        if stream.digest_name is None:
            if stream.bytes_received:
                return None  # data came before the hello: nothing was hashed
            stream.digest_name = name  # an empty stream: nothing was written, nothing announced
            if not stream.digest_external:
                stream.hasher = new_hasher(name)
        if name != stream.digest_name:
            return self._integrity_failure(stream, f"digest {name} announced as {stream.digest_name}")
        stream.digest_value = value
        if stream.digest_external:
            stream.end_reply = PendingReply()
            return stream.end_reply
        if stream.hasher.hexdigest() != value:
            return self._integrity_failure(stream, f"{name} mismatch on stream {stream.id}")
        return None

    def _integrity_failure(self: _Core, stream: StreamCore, message: str) -> dict[str, str]:
        # Not a $stream-error: the writer learns it from this ack, which its end() waits for.
        self.fail(stream, IntegrityError(message), notify=False)
        return {INTEGRITY_KEY: message}

    def verified(self: _Core, stream: StreamCore, actual: str | None) -> None:
        """External mode: the application's digest of what it read (``None``: it read nothing
        it could hash). Answers the end's ack; a mismatch fails ``stream`` with IntegrityError.
        Raises that error (or nothing when the peer sent no digest)."""
        expected = stream.digest_value
        reply, stream.end_reply = stream.end_reply, None
        if expected is None or actual == expected:
            if reply is not None:
                reply.resolve(None)
            return
        message = f"{stream.digest_name} mismatch on stream {stream.id}"
        error = IntegrityError(message)
        self.fail(stream, error, notify=False, keep_inbox=True)
        if reply is not None:
            reply.resolve({INTEGRITY_KEY: message})
        raise error

    def _digest_usable(self: _Core) -> bool:
        return FEATURE_DIGEST in self.peer_features and FEATURE_UNACKED_WRITE in self.peer_features

    def _digest_marker(self: _Core, stream: StreamCore, data: bytes) -> dict[str, Any] | None:
        """Hash ``data`` (unless the application does); the first write's digest announcement."""
        marker = None
        if stream.chunks_sent == 0 and stream.digest_name == AUTO_DIGEST:
            self.choose_digest(stream)
        if stream.chunks_sent == 0 and self._digest_usable():
            stream.digest_active = True
            marker = {"digest": stream.digest_name}
        if stream.digest_active and not stream.digest_external:
            stream.hasher.update(data)
        return marker

    def use_digest(self: _Core, stream: StreamCore, name: str, *, external: bool = False) -> None:
        """Send a digest of ``stream``'s bytes with its end (when the peer announced ``digest``).

        ``name`` is one of :data:`DIGESTS`, or ``"auto"``: blake3 toward a peer that announced
        ``digest-blake3``, else sha256, chosen when the first byte is hashed
        (:meth:`choose_digest`). With ``external`` the application hashes (with the hasher
        :meth:`choose_digest` returns) and hands the value to :meth:`set_digest` before
        ending. Raises :class:`LocalProtocolError` once data was sent, for object mode, or for
        an algorithm not in :data:`DIGESTS`.
        """
        if name not in DIGESTS and name != AUTO_DIGEST:
            raise LocalProtocolError(f"unknown digest {name!r} (one of {', '.join(sorted(DIGESTS))})")
        if stream.object_mode:
            raise LocalProtocolError("digests are for byte streams, not object mode")
        if stream.chunks_sent or stream.write_state is not WriteState.OPEN:
            raise LocalProtocolError(f"stream {stream.id} already sent data: too late for a digest")
        stream.digest_name = name
        stream.digest_writer = True
        stream.digest_external = external
        stream.hasher = None if external or name == AUTO_DIGEST else new_hasher(name)

    def choose_digest(self: _Core, stream: StreamCore) -> Any:
        """Settle an ``"auto"`` digest of a writer's ``stream`` (blake3 if the peer announced
        ``digest-blake3``, else sha256; a stream not yet sent, whose peer is unknown, gets
        sha256) and return a fresh hasher for its algorithm. Call it before the first byte is
        hashed: the first write announces the name. An external hasher may call it from the
        worker thread that hashes, before the chunk it hashes reaches the stream."""
        if stream.digest_name == AUTO_DIGEST:
            blake3 = FEATURE_DIGEST_BLAKE3 in self.peer_features
            stream.digest_name = "blake3" if blake3 else "sha256"
        assert stream.digest_name is not None
        hasher = new_hasher(stream.digest_name)
        if not stream.digest_external:
            stream.hasher = hasher
        return hasher

    def set_digest(self: _Core, stream: StreamCore, value: str) -> None:
        """The digest the application computed of everything it wrote (external mode)."""
        stream.digest_value = value

    def _end_args(self: _Core, stream: StreamCore) -> tuple[Any, ...]:
        if not stream.digest_writer or stream.object_mode or not self._digest_usable():
            return (stream.id,)
        if stream.chunks_sent and not stream.digest_active:
            return (stream.id,)  # data went out before the peer's hello: nothing to compare
        if stream.digest_name == AUTO_DIGEST:
            self.choose_digest(stream)  # nothing was written: the empty stream's digest
        if not stream.digest_external:
            stream.digest_value = stream.hasher.hexdigest()
        elif stream.digest_value is None:
            return (stream.id,)
        return (stream.id, {stream.digest_name: stream.digest_value})
