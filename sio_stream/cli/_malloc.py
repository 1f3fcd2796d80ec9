"""The command's own process keeps freed chunk buffers instead of handing them back to the kernel.

A transfer allocates and frees buffers of a chunk's size (512 KiB) many times a second: file
reads, websocket frames, their copies. glibc gives a freed block at the top of its heap back to
the kernel once more than ``M_TRIM_THRESHOLD`` is free there (1 MiB once its dynamic thresholds
have grown to a chunk's size), so a window of chunks freed together is returned, and the next
ones fault their pages in again, one by one: 100,000-160,000 page faults per GiB moved in
``sio-stream get`` / ``put`` and their server (issue 24). With the thresholds below, both
processes fault a few thousand times per GiB (the server almost never) and a ``get`` took 20%
less CPU per GiB (``benchmarks/files.py``-style runs of ``sio-stream get``, same machine, same
run).

The cost: up to :data:`TRIM_THRESHOLD` of freed memory stays with the process (per malloc
arena) after a burst, where it serves the next transfer. This is a setting of the ``sio-stream``
program, never of the library: an application that imports sio_stream keeps its own malloc.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: Free memory at the top of a heap that glibc keeps before trimming it.
TRIM_THRESHOLD = 32 * 1024 * 1024
#: Blocks from this size up get their own mapping (and go back to the kernel when freed);
#: setting it also stops glibc from moving both thresholds as it sees fit.
MMAP_THRESHOLD = 4 * 1024 * 1024
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: What a user sets for glibc by hand wins (see mallopt(3)).
_USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


def keep_freed_buffers() -> bool:
    """Set glibc's trim and mmap thresholds for this process; return whether they were set
    (False off Linux, with another C library, or when the environment sets malloc tunables)."""
    if not sys.platform.startswith("linux") or any(name in os.environ for name in _USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(None)  # the interpreter's own symbols, libc's among them
        mallopt = libc.mallopt
        gnu_get_libc_version = libc.gnu_get_libc_version  # glibc only (not musl)
    except (OSError, AttributeError):
        return False
    del gnu_get_libc_version
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success.
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    )
