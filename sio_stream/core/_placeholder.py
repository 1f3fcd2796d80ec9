"""Placeholders: swap streams for ``{"$stream": id, "options": {...}}`` objects and back.

Pure functions over JSON-shaped values (lists, tuples and dicts, walked at any depth, own
keys only), in the manner of python-socketio's binary-attachment walk. The caller says what a
stream is and what to build from a placeholder, so this module knows nothing of I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._errors import InvalidOptionError
from ._wire import PLACEHOLDER_CREDIT_KEY, PLACEHOLDER_KEY

#: Nesting deeper than this is refused rather than walked (a hostile peer's argument tree
#: must not exhaust the interpreter's stack).
MAX_DEPTH = 64


def encode(value: Any, to_placeholder: Callable[[Any], dict[str, Any] | None]) -> Any:
    """Return ``value`` with every stream replaced by its placeholder.

    ``to_placeholder(obj)`` returns the placeholder for a stream and ``None`` for anything
    else. Containers are copied only along paths that hold a stream; other values are shared.
    """
    return _encode(value, to_placeholder, 0)


def _encode(value: Any, to_placeholder: Callable[[Any], dict[str, Any] | None], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise InvalidOptionError(f"arguments nested deeper than {MAX_DEPTH} levels")
    placeholder = to_placeholder(value)
    if placeholder is not None:
        return placeholder
    if isinstance(value, (list, tuple)):
        return [_encode(item, to_placeholder, depth + 1) for item in value]
    if isinstance(value, dict):
        return {key: _encode(item, to_placeholder, depth + 1) for key, item in value.items()}
    return value


def decode(value: Any, from_placeholder: Callable[..., Any], *, credit: bool = False) -> Any:
    """Return ``value`` with every placeholder replaced by ``from_placeholder(id, options)``
    (with ``credit``: ``from_placeholder(id, options, credit)``, the placeholder's initial
    credit or ``None``, see sio_stream.core._initial).

    Raises :class:`InvalidOptionError` for trees nested deeper than :data:`MAX_DEPTH`.
    """
    return _decode(value, from_placeholder, 0, credit)


def _decode(value: Any, from_placeholder: Callable[..., Any], depth: int, credit: bool = False) -> Any:
    if depth > MAX_DEPTH:
        raise InvalidOptionError(f"arguments nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, list):
        return [_decode(item, from_placeholder, depth + 1, credit) for item in value]
    if isinstance(value, dict):
        if value.get(PLACEHOLDER_KEY):
            stream_id, options = value[PLACEHOLDER_KEY], value.get("options")
            if credit:
                return from_placeholder(stream_id, options, value.get(PLACEHOLDER_CREDIT_KEY))
            return from_placeholder(stream_id, options)
        return {key: _decode(item, from_placeholder, depth + 1, credit) for key, item in value.items()}
    return value
