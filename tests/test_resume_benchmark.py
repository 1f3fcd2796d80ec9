"""benchmarks/resume.py runs (tiny sizes, one uncut/cut pair): every stream intact, exit 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "resume.py"


def test_the_resume_benchmark_runs() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--only",
            "parallel,vanish",
            "--size-mib",
            "1",
            "--repeat",
            "1",
            "--clients",
            "5",
            "--resume-timeout",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("parallel ") and "8/8 intact, 0 errors" in line for line in lines), lines
    assert any(line.startswith("vanish 5 clients: 5 sessions kept") for line in lines), lines
