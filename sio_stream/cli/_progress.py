"""A dependency-free text progress bar for the CLI, usable as a ``progress`` callback.

Drawn on one terminal line with carriage returns, at most ``1 / interval`` times a second
(drawing per 512 KiB chunk would cost more than the transfer at loopback speeds).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

#: Redraws per second at most: smooth to the eye, negligible CPU.
DEFAULT_INTERVAL = 0.1
_BAR_WIDTH = 30


def format_size(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``: binary units, as file sizes are usually counted."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def format_rate(n_bytes: int, seconds: float) -> str:
    """Decimal megabytes per second (the unit network throughput is quoted in)."""
    return f"{n_bytes / max(seconds, 1e-9) / 1e6:.1f} MB/s"


class ProgressBar:
    """``bar(done, total)`` redraws ``label [#####.....] 42.0% 10.5/25.0 MiB 120.3 MB/s``.

    Nothing is drawn when ``enabled`` is false (the default when ``file`` is not a terminal,
    so logs and pipes get no carriage-return noise). Call :meth:`close` at the end to draw
    the final state and move to a new line.
    """

    def __init__(
        self,
        label: str,
        *,
        file: TextIO | None = None,
        enabled: bool | None = None,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self.label = label
        self.file = file if file is not None else sys.stderr
        self.enabled = self.file.isatty() if enabled is None else enabled
        self.interval = interval
        self.done = 0
        self.total: int | None = None
        self.started = time.monotonic()
        self._last_draw = 0.0

    def __call__(self, done: int, total: int | None) -> None:
        self.done, self.total = done, total
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last_draw >= self.interval:
            self._last_draw = now
            self._draw(now)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _draw(self, now: float) -> None:
        done, total = self.done, self.total
        rate = format_rate(done, now - self.started)
        if total:
            fraction = min(done / total, 1.0)
            filled = int(fraction * _BAR_WIDTH)
            bar = "#" * filled + "." * (_BAR_WIDTH - filled)
            text = f"{self.label} [{bar}] {fraction:6.1%} {format_size(done)}/{format_size(total)} {rate}"
        else:
            text = f"{self.label} {format_size(done)} {rate}"
        # Pad to erase a longer previous line; no ANSI codes, so any terminal works.
        self.file.write("\r" + text.ljust(79))
        self.file.flush()

    def close(self) -> None:
        """Draw the final state (if enabled) and end the line."""
        if self.enabled:
            self._draw(time.monotonic())
            self.file.write("\n")
            self.file.flush()
