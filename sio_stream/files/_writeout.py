"""A received file's data leaves the page cache a few MiB behind its writes (Linux), once the
file is larger than :data:`WRITE_OUT_AFTER`.

Past that size, written data is handed to the disk :data:`WRITE_OUT_STEP` bytes at a time
(``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which starts the writeback and returns), and the
step before, waited for on disk, is dropped from the page cache (``posix_fadvise``
``POSIX_FADV_DONTNEED``). A transfer then holds at most about two steps of the file in the
cache, and its writes land in pages the steps before freed, which the kernel hands out again
while they are still warm.

Why: a page-cache write into memory the machine has not used for a while costs far more than
the copy. On the benchmarks' virtual machine (free memory handed back to the host), writing
256 MiB into fresh page cache cost 2.2-2.6 CPU s/GiB against 0.23-0.58 where it reused freed
pages, so a receiver's CPU per GiB doubled with the file write alone; written out and dropped
step by step it cost 0.28-0.33 s/GiB in every run, the writeback's submission included (which
the kernel's flusher threads would otherwise pay). It also keeps a large download from evicting
the rest of the cache and from piling up dirty pages (the kernel throttles a writer with GiBs
of them: a 3 GiB file written in 512 KiB pieces cost 0.95-1.55 CPU s/GiB and 1.5-2.3 s/GiB of
wall time into the cache, 0.36-0.38 and 0.80 written out).

The cost: such a file is not in the cache once received (reading it again reads the disk),
its writes go at the disk's speed (the wait is in the write-behind worker thread; the stream's
credit holds the sender), and where memory is at hand the writeback started in the receiving
process cost 0.13 CPU s/GiB more: hence only past :data:`WRITE_OUT_AFTER`. Where
``sync_file_range`` is missing (not Linux) or refused (not a regular file), nothing changes.
A write error the disk reports here raises ``OSError`` (it would otherwise be lost, as nothing
fsyncs the file).
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from collections.abc import Callable
from typing import Any

#: Bytes written out at a time: 8 MiB cost the least CPU of 2, 4, 8 and 16 MiB here (within
#: noise of 16), and a transfer holds about twice that in the page cache.
WRITE_OUT_STEP = 8 * 1024 * 1024

#: Bytes a transfer writes to the page cache before its writes are written out (then all of
#: them): where memory is at hand, handing the writes to the disk in the receiving process cost
#: 0.13 CPU s/GiB more than leaving them to the kernel (0.24 -> 0.37 for 256 MiB files), and in
#: ``benchmarks/files.py`` 256 MiB transfers lost a fifth of their rate; a file up to this size
#: is written and cached as before, a larger one never leaves more than this behind.
WRITE_OUT_AFTER = 1024 * 1024 * 1024

_WAIT_BEFORE, _WRITE, _WAIT_AFTER = 1, 2, 4  # SYNC_FILE_RANGE_* flags
#: Errors that mean the disk failed the data (raised), not that the call does not apply here.
_WRITE_ERRORS = {errno.EIO, errno.ENOSPC, errno.EDQUOT}


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux") or not hasattr(os, "posix_fadvise"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_sync_file_range = _load_sync_file_range()


class WritingOut:
    """``write`` (the file's own, or a wrapper of it) followed by the write-out of every full step;
    the file (``fileno()``, ``flush()``) holds ``start`` bytes already and the writes append.
    Blocking: call :meth:`write` in a worker thread. One writer at a time."""

    def __init__(self, file: Any, write: Callable[[bytes], object], start: int = 0) -> None:
        self._file = file
        self._write = write
        self._written = start
        self._handed = start  # written out up to here (the writeback started)
        self._dropped = start  # and dropped from the cache up to here
        self._after = start + WRITE_OUT_AFTER
        fileno = getattr(file, "fileno", None)
        self._fd: int | None = fileno() if _sync_file_range is not None and callable(fileno) else None

    def write(self, data: bytes) -> None:
        self._write(data)
        self._written += len(data)
        if (
            self._fd is not None
            and self._written - self._handed >= WRITE_OUT_STEP
            and self._written >= self._after
        ):
            self._write_out(self._fd)

    def _write_out(self, fd: int) -> None:
        self._file.flush()  # a buffered file's last bytes, if any, are in the kernel too
        if not self._call(fd, self._handed, self._written - self._handed, _WRITE):
            return
        # The step before the one just handed over: wait until it is on disk, then drop it.
        if self._handed > self._dropped:
            if not self._call(
                fd, self._dropped, self._handed - self._dropped, _WAIT_BEFORE | _WRITE | _WAIT_AFTER
            ):
                return
            try:
                os.posix_fadvise(fd, self._dropped, self._handed - self._dropped, os.POSIX_FADV_DONTNEED)
            except OSError:  # a file system without it: the pages stay cached, nothing else changes
                self._fd = None
                return
            self._dropped = self._handed
        self._handed = self._written

    def _call(self, fd: int, offset: int, length: int, flags: int) -> bool:
        """``sync_file_range``; False (and nothing written out from now on) where it does not
        apply; raises ``OSError`` for a write error."""
        assert _sync_file_range is not None
        if _sync_file_range(fd, offset, length, flags) == 0:
            return True
        code = ctypes.get_errno()
        if code in _WRITE_ERRORS:
            raise OSError(code, os.strerror(code))
        self._fd = None
        return False
