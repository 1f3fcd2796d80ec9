"""benchmarks/ramp.py (the window trace) is not in run.py: a tiny loopback run keeps it working."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_the_ramp_trace_runs_and_reports_every_transfer():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "ramp.py"), "--direct", "--mib", "4"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    seconds = json.loads(lines[-1])
    assert set(seconds) == {"upload", "upload again", "download"}
    # Every transfer's line names its largest window against the cap, which it never passes.
    assert sum("cap 64: met" in line for line in lines) == 3, done.stdout
