"""Disk space reserved a few MiB ahead of a received file's writes (Linux ``fallocate``).

When a write extends a file, ext4 reserves and accounts its space page by page; with the blocks
reserved beforehand (as unwritten extents) a page-cache write of the same data cost about a
quarter less CPU here (0.23 -> 0.17 CPU s/GiB, the reservations included). Space is reserved
:data:`RESERVE_AHEAD` at a time, never more than that beyond what was written, so a peer that
announces a size it never sends costs no more disk than that, and with ``FALLOC_FL_KEEP_SIZE``:
the file's length stays what was written (a partial file's length is its resume offset).
:meth:`Reserving.trim` gives back what the writes did not fill.

Through ``fallocate(2)`` itself: glibc's ``posix_fallocate`` (``os.posix_fallocate``) writes a
zero into every block where the file system cannot reserve (NFSv3, FAT), which would double the
writes there. Where ``fallocate`` is missing (not Linux) or refused, nothing is reserved.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable
from typing import Any

#: Bytes reserved at a time (ahead of the writes): 4 MiB measured as good as the whole file.
RESERVE_AHEAD = 4 * 1024 * 1024

_KEEP_SIZE = 0x01  # FALLOC_FL_KEEP_SIZE


def _load_fallocate() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    function.restype = ctypes.c_int
    return function


_fallocate = _load_fallocate()


class Reserving:
    """A binary file's ``write`` that reserves disk space ahead of it; the file holds ``start``
    bytes already (its writes append). One writer at a time."""

    def __init__(self, file: Any, start: int = 0) -> None:
        self._file = file
        self._written = start
        self._reserved = start
        fileno = getattr(file, "fileno", None)
        self._fd: int | None = fileno() if _fallocate is not None and callable(fileno) else None
        self._reserving = self._fd is not None

    def write(self, data: bytes) -> None:
        end = self._written + len(data)
        if end > self._reserved and self._reserving:
            self._reserve()
        self._file.write(data)
        self._written = end

    def _reserve(self) -> None:
        assert _fallocate is not None and self._fd is not None
        if _fallocate(self._fd, _KEEP_SIZE, self._reserved, RESERVE_AHEAD) == 0:
            self._reserved += RESERVE_AHEAD
        else:
            # Refused (no support, no space): reserve nothing more; the writes report real errors.
            self._reserving = False

    def trim(self) -> None:
        """Give back the space reserved beyond the file's end (blocking: call it in a worker
        thread, once the writes are done). Its length stays: a file cut back since (a failed
        check) is not lengthened again."""
        if self._reserved > self._written and self._fd is not None:
            self._file.flush()
            os.ftruncate(self._fd, os.fstat(self._fd).st_size)
            self._reserved = self._written
