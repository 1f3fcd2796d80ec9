"""Stream options: the Python names, their wire (camelCase) form, and validation.

The wire form is what JavaScript puts in a placeholder's ``options``: only the keys the
creator set, with unknown keys kept (and ignored) so they survive a round trip.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import InvalidOptionError
from ._chunks import NODE_ENCODINGS

#: Bytes a writer buffers before ``write()`` waits: one default chunk, so a slow peer
#: costs at most a chunk of buffering and a fast one always finds a full chunk to coalesce.
DEFAULT_HIGH_WATER_MARK = 256 * 1024
#: Node's default for object-mode streams (objects, not bytes).
DEFAULT_OBJECT_HIGH_WATER_MARK = 16
#: A peer may ask for any highWaterMark; our writer never buffers more than this because of it.
MAX_HIGH_WATER_MARK = 16 * 1024 * 1024

_WIRE_NAMES = {
    "high_water_mark": "highWaterMark",
    "encoding": "encoding",
    "decode_strings": "decodeStrings",
    "object_mode": "objectMode",
    "allow_half_open": "allowHalfOpen",
}


@dataclass(frozen=True)
class StreamOptions:
    """Options of one stream, shared by both ends (the creator's choice travels with it).

    ``None`` means "not set": the option is left out of the wire form and the default applies.
    """

    high_water_mark: int | None = None
    encoding: str | None = None
    object_mode: bool = False
    allow_half_open: bool = False
    decode_strings: bool | None = None
    #: Wire keys we do not know, kept verbatim so they reach the next peer unchanged.
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: Which keys the creator set explicitly (the wire form carries only those).
    explicit: frozenset[str] = frozenset()

    @classmethod
    def create(cls, **options: Any) -> StreamOptions:
        """Options from Python keyword arguments; raises :class:`InvalidOptionError`."""
        unknown = set(options) - set(_WIRE_NAMES)
        if unknown:
            raise InvalidOptionError(f"unknown stream option(s): {', '.join(sorted(unknown))}")
        set_keys = frozenset(k for k, v in options.items() if v is not None)
        values = {k: v for k, v in options.items() if v is not None}
        created = cls._validated(values, {}, set_keys)
        # Only our own streams are held to Node's list: a peer's placeholder keeps whatever
        # string it carries (from_wire), since the option only travels with the stream (each
        # chunk names its own encoding) and refusing it would fail a stream that works.
        if created.encoding is not None and created.encoding.lower() not in NODE_ENCODINGS:
            raise InvalidOptionError(
                f"unknown encoding {created.encoding!r}: Node's encodings are "
                f"{', '.join(sorted(NODE_ENCODINGS))} (in any case)"
            )
        return created

    @classmethod
    def from_wire(cls, wire: Any) -> StreamOptions:
        """Options from a placeholder's ``options`` value; raises :class:`InvalidOptionError`."""
        if wire is None:
            return cls()
        if not isinstance(wire, dict):
            raise InvalidOptionError(f"stream options must be an object, not {type(wire).__name__}")
        by_wire = {w: p for p, w in _WIRE_NAMES.items()}
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in wire.items():
            if key in by_wire:
                if value is not None:
                    values[by_wire[key]] = value
            else:
                extra[str(key)] = value
        return cls._validated(values, extra, frozenset(values))

    @classmethod
    def _validated(
        cls, values: dict[str, Any], extra: dict[str, Any], explicit: frozenset[str]
    ) -> StreamOptions:
        hwm = values.get("high_water_mark")
        if hwm is not None:
            # isfinite() only for floats: it raises OverflowError for ints beyond a float's range.
            if (
                isinstance(hwm, bool)
                or not isinstance(hwm, (int, float))
                or (isinstance(hwm, float) and not math.isfinite(hwm))
            ):
                raise InvalidOptionError(f"highWaterMark must be a number, not {hwm!r}")
            if hwm < 0:
                raise InvalidOptionError(f"highWaterMark must not be negative: {hwm!r}")
            hwm = int(hwm)
        encoding = values.get("encoding")
        if encoding is not None and not isinstance(encoding, str):
            raise InvalidOptionError(f"encoding must be a string, not {encoding!r}")
        flags = {}
        for name in ("object_mode", "allow_half_open", "decode_strings"):
            value = values.get(name)
            if value is not None and not isinstance(value, bool):
                raise InvalidOptionError(f"{_WIRE_NAMES[name]} must be a boolean, not {value!r}")
            flags[name] = value
        return cls(
            high_water_mark=hwm,
            encoding=encoding,
            object_mode=bool(flags["object_mode"]),
            allow_half_open=bool(flags["allow_half_open"]),
            decode_strings=flags["decode_strings"],
            extra=extra,
            explicit=explicit,
        )

    def to_wire(self) -> dict[str, Any] | None:
        """The placeholder ``options`` object, or ``None`` when nothing was set."""
        if not self.explicit and not self.extra:
            return None
        wire: dict[str, Any] = dict(self.extra)
        for name in sorted(self.explicit):
            wire[_WIRE_NAMES[name]] = getattr(self, name)
        return wire

    @property
    def effective_high_water_mark(self) -> int:
        """Buffering limit of the writable side: objects in object mode, bytes otherwise."""
        if self.high_water_mark is None:
            if self.object_mode:
                return DEFAULT_OBJECT_HIGH_WATER_MARK
            return DEFAULT_HIGH_WATER_MARK
        return min(self.high_water_mark, MAX_HIGH_WATER_MARK)
