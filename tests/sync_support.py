"""Sync servers and clients for the sync API's tests: a socketio.Server (threading mode, simple-websocket)
behind werkzeug's threaded WSGI server on 127.0.0.1, in a thread of the test process."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import socketio
from werkzeug.serving import make_server


@contextmanager
def serving(wsgi_app: Any) -> Iterator[str]:
    """Serve ``wsgi_app`` on a free port; yield its URL."""
    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(30)


@contextmanager
def sync_server(**kwargs: Any) -> Iterator[tuple[socketio.Server, str]]:
    sio = socketio.Server(async_mode="threading", **kwargs)
    with serving(socketio.WSGIApp(sio)) as url:
        yield sio, url


@contextmanager
def sync_client(url: str, **kwargs: Any) -> Iterator[socketio.Client]:
    client = socketio.Client(**kwargs)
    try:
        yield client
    finally:
        if client.connected:
            client.disconnect()


def eventually(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait (with an Event, not a sleep loop of fixed length) until ``predicate`` holds."""
    idle = threading.Event()
    waited = 0.0
    while not predicate():
        if waited >= timeout:
            raise AssertionError("condition not met in time")
        idle.wait(0.01)
        waited += 0.01


class PeerProcess:
    """``tests/sync_peer.py`` in a subprocess: its URL and its stdout lines as they arrive."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("sync_peer.py")), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        first = self.line("LISTENING ")
        self.url = f"http://127.0.0.1:{first.split()[1]}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put("")  # the end

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def line(self, prefix: str, timeout: float = 60) -> str:
        """The next stdout line starting with ``prefix`` (other lines are kept in ``seen``)."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {prefix!r} line within {timeout} s; saw {self.seen}") from None
            if line.startswith(prefix):
                return line
            if not line:
                self.stop()
                raise AssertionError(f"the peer exited before {prefix!r}: {self.seen}\n{self.stderr[-3000:]}")
            self.seen.append(line)

    def stop(self) -> None:
        """Terminate the process (this pid only) and collect what it wrote."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        while not self.lines.empty():
            if line := self.lines.get_nowait():
                self.seen.append(line)


@contextmanager
def sync_peer(*args: str) -> Iterator[PeerProcess]:
    peer = PeerProcess(*args)
    try:
        yield peer
    finally:
        peer.stop()
