"""Sync clients (``socketio.Client`` with sio_stream.sync) under eventlet and gevent, monkey-patched,
each in a process of its own (tests/sync_green_client.py: monkey-patching never reaches pytest),
against a sync server (tests/sync_peer.py, threading and the client's own mode)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.sync_support import sync_peer

CLIENT = Path(__file__).with_name("sync_green_client.py")
TIMEOUT = 180
#: (client mode, server mode): each green client against a threading server and one of its kind.
COMBINATIONS = [
    ("eventlet", "threading"),
    ("gevent", "threading"),
    ("eventlet", "eventlet"),
    ("gevent", "gevent"),
]


def run_client(mode: str, url: str, scenario: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(CLIENT), "--mode", mode, url, scenario],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 0, (lines, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return lines


@pytest.mark.parametrize(("mode", "server_mode"), COMBINATIONS, ids=["-".join(c) for c in COMBINATIONS])
def test_upload_download_and_echo(mode: str, server_mode: str) -> None:
    with sync_peer("--mode", server_mode) as peer:
        lines = run_client(mode, peer.url, "basic")
    assert lines == ["OK upload", "OK download", "OK echo", "OK nothing left"]
    assert not [line for line in peer.seen if line.startswith("FAILED")], peer.seen


@pytest.mark.parametrize("mode", ["eventlet", "gevent"])
def test_a_disconnect_mid_transfer_fails_both_streams(mode: str) -> None:
    with sync_peer("--mode", "threading") as peer:
        lines = run_client(mode, peer.url, "drop")
        assert peer.line("DROPPED ")
    assert lines == ["OK the writer stopped", "OK both streams aborted", "OK nothing left"]
