"""Every program in examples/ runs to completion on its own and reports success."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: The line each example prints when everything checked out.
EXPECTED = {
    "download.py": "download ok: sha256 matches",
    "upload.py": "upload ok: sha256 matches",
    "echo.py": "echo ok",
    "live_data.py": "live data ok: 50 ticks in order",
    "several_files.py": "several files ok",
    "ack_stream.py": "ack stream ok",
    "asgi_uvicorn.py": "asgi ok: sha256 matches",
    "flask_app.py": "flask ok: sha256 matches",
    "resumable_upload.py": "resumable upload ok: sha256 matches",
}


def test_every_example_is_checked() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=60, cwd=EXAMPLES
    )
    assert result.returncode == 0, result.stderr
    assert EXPECTED[name] in result.stdout.splitlines()
    # A clean run logs nothing: no handler errors, no unclosed sessions, no tracebacks, no
    # "Task exception was never retrieved" (a task whose failure nobody awaited).
    assert "never retrieved" not in result.stderr, result.stderr
    assert result.stderr == "", result.stderr
