"""What the modules of the ``sio-stream`` command share: names, the expected failure
(:class:`CliError`), small helpers."""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path

import anyio

PROG = "sio-stream"
DEFAULT_PORT = 8765
#: Token read when ``--token`` is not given (keeps it out of the process list).
TOKEN_ENV = "SIO_STREAM_TOKEN"
#: Seconds to wait for a connection or a non-transfer ack: generous, a local server answers in ms.
REQUEST_TIMEOUT = 30.0


class CliError(Exception):
    """An expected failure: printed as one line, exit status 1."""


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``"64M"`` -> 67108864. Suffixes K, M, G, T are binary (KiB, MiB, ...); none means bytes."""
    match = _SIZE_RE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 8M, 256MiB, 1G, 1000)")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** " kmgt".index(unit or " "))


def normalize_url(url: str) -> str:
    return url if "://" in url else f"http://{url}"


async def sha256_file(path: Path) -> str:
    """The file's sha256, computed in a worker thread (hashlib releases the GIL)."""

    def digest() -> str:
        with open(path, "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()

    return await anyio.to_thread.run_sync(digest)


def _require_aiohttp() -> None:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise CliError("the sio-stream command needs aiohttp: pip install 'sio-stream[server]'") from None
