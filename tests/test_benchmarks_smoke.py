"""A tiny run of every benchmark script, so they cannot rot (figures are not checked: the
machines are shared and noisy; only that each study ran and printed its ratio lines)."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STUDIES = (
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
)
#: Studies run at once, each in its own process: a smoke run is mostly start-up and waiting (one
#: after the other: 252 s of wall time for 86 s of CPU), and its figures are not looked at.
AT_ONCE = 4


def _smoke(study: str, out: Path) -> subprocess.CompletedProcess[str]:
    out.mkdir()
    command = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--no-chart"]
    return subprocess.run(
        [*command, "--only", study, "--out", str(out)],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=840,
    )


@pytest.mark.timeout(900)  # every study once, a few MiB each: 2-4 minutes on a busy machine
def test_every_benchmark_runs_in_smoke_mode(tmp_path):
    with ThreadPoolExecutor(AT_ONCE) as pool:
        results = dict(zip(STUDIES, pool.map(lambda s: _smoke(s, tmp_path / s), STUDIES), strict=True))
    for study, result in results.items():
        assert result.returncode == 0, f"{study}:\n" + result.stdout[-3000:] + result.stderr[-3000:]
        assert f"\n{study}" in result.stdout, f"{study} printed nothing:\n{result.stdout[-2000:]}"
    assert "vs raw-socketio" in results["throughput"].stdout
    assert "vs in-memory" in results["files"].stdout
