"""A short run of benchmarks/soak.py (the long form runs for an hour, by hand): clients
streaming, aborting and reconnecting leave the server with no stream, connection or task, and
its memory flat after the warm-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_short_soak_leaves_nothing_open_and_memory_flat(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "soak.py"),
            *("--duration", "16", "--clients", "4", "--sample", "2", "--warmup", "6"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "soak: OK" in out
    samples = [line for line in out.splitlines() if line.startswith("t=")]
    assert len(samples) >= 5, out
    assert " streams=   0 " in samples[-1], samples[-1]
