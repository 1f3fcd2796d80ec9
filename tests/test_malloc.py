"""The malloc thresholds of ``sio_stream.keep_freed_buffers()`` (what ``sio-stream`` sets for
itself), in fresh interpreters: chunk-sized buffers freed and allocated again come back without
faulting their pages in anew."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# Two chunk-sized blocks live at once, then freed, 256 times over: the pattern of a window of
# chunks and their copies. Counted in page faults (the kernel's count: no clock involved).
SCRIPT = """
import json, os, resource, sys
from sio_stream import keep_freed_buffers  # the public opt-in
kept = keep_freed_buffers() if sys.argv[1] == "tuned" else None
chunk = os.urandom(512 * 1024)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(256):
    copy = bytearray(chunk)
    frame = b"header" + copy
    del copy, frame
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"kept": kept, "faults": after - before}))
"""

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION"),
    reason="glibc's mallopt",
)


def _run(mode: str, **env: str) -> dict[str, object]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    environ.pop("GLIBC_TUNABLES", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_freed_chunks_are_reused_without_faulting_their_pages_again() -> None:
    tuned = _run("tuned")
    assert tuned["kept"] is True
    # 256 rounds of 128 pages each: a process that gave them back faults tens of thousands of
    # times; one that keeps them, once per page at most (plus what the interpreter does).
    assert isinstance(tuned["faults"], int) and tuned["faults"] < 2_000


def test_the_users_own_malloc_settings_win() -> None:
    assert _run("tuned", MALLOC_TRIM_THRESHOLD_="131072")["kept"] is False


def test_a_malloc_tunable_wins_and_other_tunables_do_not_count() -> None:
    assert _run("tuned", GLIBC_TUNABLES="glibc.malloc.trim_threshold=131072")["kept"] is False
    assert _run("tuned", GLIBC_TUNABLES="glibc.cpu.hwcaps=-AVX512F")["kept"] is True
