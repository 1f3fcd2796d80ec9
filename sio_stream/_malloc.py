"""Keep freed chunk buffers in the process instead of handing them back to the kernel: an opt-in.

A transfer allocates and frees buffers of a chunk's size (512 KiB) many times a second: socket
reads, websocket frames, their copies. glibc gives a freed block at the top of its heap back to
the kernel once more than ``M_TRIM_THRESHOLD`` is free there (1 MiB once its dynamic thresholds
have grown to a chunk's size). A stream's reader holds a window of chunks, so a window freed
together is returned, and the next chunks fault their pages in again one by one; hand-rolled
acked emits, whose callback frees each chunk before the next arrives, never free that much at
once. The faults are most of what a download costs a sync client beyond those emits (issue 23:
about 20,000 per 256 MiB, against 200; ``benchmarks/sync.py --malloc-kept``), and 100,000-160,000
per GiB in ``sio-stream get`` / ``put`` and their server (issue 24).

:func:`keep_freed_buffers` sets both thresholds for the whole process, so that freed blocks
stay and serve the next chunks. The library never calls it by itself: malloc belongs to the
application (which may run other work, or its own settings). The ``sio-stream`` command calls
it for its own process; a server or client that moves a lot of data calls it once at start-up.

The cost: up to :data:`TRIM_THRESHOLD` of freed memory stays with the process (per malloc
arena: one per thread that allocates, up to 8 per core) after a burst, where it serves the next
transfer; blocks of :data:`MMAP_THRESHOLD` and more still get mappings of their own.
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


def _sets_malloc(name: str) -> bool:
    """The environment variable ``name`` sets malloc's behaviour (``GLIBC_TUNABLES`` only when
    it names a ``glibc.malloc.`` tunable: other tunables leave malloc to us)."""
    value = os.environ.get(name)
    if value is None:
        return False
    return name != "GLIBC_TUNABLES" or "glibc.malloc." in value


def keep_freed_buffers() -> bool:
    """Make this process keep freed chunk buffers for reuse (glibc's trim and mmap thresholds,
    see the module's docstring for what it costs); return whether the thresholds were set.

    Call it once, early (before the first transfer); it affects every thread of the process and
    stays for its life. Returns False, changing nothing, off Linux, with a C library other than
    glibc (musl), or when the environment already sets malloc tunables
    (``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``, a ``glibc.malloc.`` tunable in
    ``GLIBC_TUNABLES``: the user's own choice wins). Raises nothing."""
    if not sys.platform.startswith("linux") or any(_sets_malloc(name) for name in _USER_SETTINGS):
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
