"""A tiny run of every benchmark script, so they cannot rot (figures are not checked: the
machines are shared and noisy; only that each study ran and printed its ratio lines)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(900)  # every study once, a few MiB each: 4-6 minutes on a busy machine
def test_every_benchmark_runs_in_smoke_mode(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--no-chart"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for study in (
        "throughput",
        "latency",
        "memory",
        "concurrency",
        "quiet",
        "links",
        "objects",
        "files",
        "guides",
        "fanout",
        "hostile",
        "stalled",
        "cluster",
        "sync",
    ):
        assert f"\n{study}" in out, f"{study} printed nothing:\n{out[-2000:]}"
    assert "vs raw-socketio" in out
    assert "vs in-memory" in out
