"""Shared plumbing of the benchmark scripts: peer processes, the link emulator, result lines.

Every measurement runs a server process and a client process (Python: ``peer.py``; JavaScript:
``node/peer.js``) on 127.0.0.1. Figures are compared only with baselines measured in the same
run: the machines are small and shared, so absolute numbers mean little.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"
PYTHON = sys.executable
MiB = 1024 * 1024

#: Implementations, in the order they are reported.
SIO = "sio"  # sio_stream on python-socketio (defaults unless a sweep says otherwise)
RAW = "raw"  # hand-rolled python-socketio: binary events with acks, a fixed number in flight
JS = "js"  # socket.io-stream 0.9.1 on Socket.IO 4.8.4 (Node client and Node server)
RAW_WS = "raw-ws"  # a bare aiohttp WebSocket, binary messages of the chunk size: the transport
LABELS = {SIO: "sio_stream", RAW: "raw-socketio", JS: "js-ss-0.9.1", RAW_WS: "raw-aiohttp-ws"}

#: sio_stream's defaults (sio_stream/core/_core.py); the raw baseline uses the same chunk and window.
DEFAULT_CHUNK = 512 * 1024
DEFAULT_WINDOW = 4
#: What a Node application typically writes (fs streams' chunk size); socket.io-stream sends one
#: $stream-write per write, so this is its chunk size.
JS_WRITE = 64 * 1024


def common_args(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (the run.py --quick suite)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: a few MiB, for CI")
    parser.add_argument("--repeat", type=int, default=None, help="runs per measurement (median reported)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    return parser


def mode_of(args: argparse.Namespace) -> str:
    return "smoke" if args.smoke else "quick" if args.quick else "full"


def node_available() -> bool:
    return (NODE_DIR / "node_modules" / "socket.io-stream").is_dir()


def ensure_node() -> bool:
    """Install the pinned Node packages (npm ci) if needed; False when node/npm are missing."""
    if node_available():
        return True
    try:
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, stdout=subprocess.DEVNULL
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"# JavaScript baseline unavailable ({exc}); run `npm ci` in {NODE_DIR}", file=sys.stderr)
        return False
    return node_available()


# -- processes --------------------------------------------------------------------------------------
def _listening(proc: subprocess.Popen[str], what: str) -> int:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("LISTENING "):
        proc.kill()
        raise RuntimeError(f"{what} did not start: {line!r}")
    return int(line.split()[1])


@contextmanager
def _process(
    cmd: list[str], what: str, cwd: Path | None = None
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=cwd)
    try:
        yield proc, _listening(proc, what)
    finally:
        # Closing stdin asks the peer to stop; SIGTERM/SIGKILL (of this pid only) if it does not.
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def server(impl: str, configs: list[tuple[int, int]] | None = None) -> Iterator[Server]:
    """A benchmark server: the Python peer (serves both sio_stream and raw) or the Node peer."""
    if impl == JS:
        cmd, cwd = ["node", "peer.js", "server"], NODE_DIR
    else:
        cmd, cwd = [PYTHON, str(HERE / "peer.py"), "server"], None
        if configs:
            cmd += ["--configs", ",".join(f"{w}:{c}" for w, c in configs)]
    with _process(cmd, f"{impl} server", cwd) as (proc, port):
        yield Server(impl, proc.pid, port)


class Server:
    def __init__(self, impl: str, pid: int, port: int) -> None:
        self.impl = impl
        self.pid = pid
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def delay_proxy(target_port: int, rtt_ms: float) -> Iterator[str]:
    """A TCP proxy adding ``rtt_ms`` of round-trip time in front of ``target_port``; yields its URL."""
    with link(target_port, rtt_ms=rtt_ms) as port:
        yield f"http://127.0.0.1:{port}"


@contextmanager
def link(
    target_port: int,
    *,
    rate: float | None = None,
    rtt_ms: float = 0.0,
    queue: int | None = None,
    cut_every: float | None = None,
) -> Iterator[int]:
    """The link emulator (``link.py``, its own process) in front of ``target_port``: ``rate``
    bytes/s (None: unlimited), ``rtt_ms`` of round trip, ``queue`` bytes (None: its default).
    Yields its port."""
    cmd = [PYTHON, str(HERE / "link.py"), "--target", f"127.0.0.1:{target_port}", "--rtt", f"{rtt_ms}ms"]
    if rate is not None:
        cmd += ["--rate", f"{rate:.0f}"]
    if queue is not None:
        cmd += ["--queue", str(queue)]
    if cut_every is not None:
        cmd += ["--cut-every", f"{cut_every}s"]
    with _process(cmd, "link") as (_, port):
        yield port


@contextmanager
def tcp_server() -> Iterator[int]:
    """The raw TCP peer (``tcpbulk.py server``); yields its port."""
    with _process([PYTHON, str(HERE / "tcpbulk.py"), "server"], "tcp server") as (_, port):
        yield port


def run_tcp_client(port: int, jobs: list[dict[str, Any]], timeout: float = 600) -> list[dict[str, Any]]:
    """Run raw TCP ``jobs`` (``tcpbulk.py client``) against 127.0.0.1:``port``; one result each."""
    cmd = [PYTHON, str(HERE / "tcpbulk.py"), "client", f"127.0.0.1:{port}", json.dumps(jobs)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"tcp client failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def run_client(impl: str, url: str, jobs: list[dict[str, Any]], timeout: float = 600) -> list[dict[str, Any]]:
    """Run ``jobs`` in one client process; one result dict per job."""
    payload = json.dumps([{"impl": impl, **job} for job in jobs])
    if impl == JS:
        cmd, cwd = ["node", "peer.js", "client", url, payload], NODE_DIR
    else:
        cmd, cwd = [PYTHON, str(HERE / "peer.py"), "client", url, payload], None
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{impl} client failed ({done.returncode}):\n{done.stderr[-3000:]}")
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    for job, result in zip(jobs, results, strict=True):
        expected = job.get("expect", job.get("size"))
        if expected is not None and result["bytes"] != expected:
            raise RuntimeError(f"{impl} {job['op']}: {result['bytes']} bytes instead of {expected}")
    return results


# -- figures ------------------------------------------------------------------------------------------
def mb_s(result: dict[str, Any]) -> float:
    return result["bytes"] / result["seconds"] / 1e6


def cpu_per_gib(result: dict[str, Any], side: str) -> float:
    return result[f"{side}_cpu"] / (result["bytes"] / (1024 * MiB))


def make_file(path: Path, size: int) -> None:
    """``size`` incompressible bytes at ``path`` (a 4 MiB random block repeated)."""
    block = os.urandom(4 * MiB)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(block[: min(left, len(block))])
            left -= len(block)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def size_label(n: int) -> str:
    return f"{n / (1024 * MiB):g}GiB" if n >= 1024 * MiB else f"{n / MiB:g}MiB"


class Report:
    """Prints one comparable line per measurement and keeps them for ``latest.json``."""

    def __init__(self, bench: str, mode: str) -> None:
        self.bench = bench
        self.mode = mode
        self.rows: list[dict[str, Any]] = []
        self.started = time.time()

    def line(
        self,
        name: str,
        value: float,
        unit: str,
        ratios: dict[str, float] | None = None,
        target: str | None = None,
        met: bool | None = None,
        **extra: Any,
    ) -> None:
        ratios = ratios or {}
        parts = [f"{self.bench:<11} {name:<50} {_fmt(value):>9} {unit:<8}"]
        parts += [f"x{_fmt(r)} vs {b}" for b, r in ratios.items()]
        if target is not None:
            parts.append(f"[target {target}: {verdict(met)}]")
        if extra.get("note"):
            parts.append(f"({extra['note']})")
        print("  ".join(parts), flush=True)
        self.rows.append(
            {"bench": self.bench, "name": name, "value": value, "unit": unit, "ratios": ratios}
            | ({"target": target, "met": met} if target is not None else {})
            | extra
        )

    def note(self, text: str) -> None:
        print(f"# {self.bench}: {text}", flush=True)

    def finish(self, path: Path | None) -> dict[str, Any]:
        out = {
            "bench": self.bench,
            "mode": self.mode,
            "seconds": round(time.time() - self.started, 1),
            "rows": self.rows,
        }
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(out, indent=2))
        return out


def verdict(met: bool | None) -> str:
    """'met', 'UNMET', or 'n/a' when the figure could not be measured (too short a run)."""
    return "n/a" if met is None else "met" if met else "UNMET"


def _fmt(x: float) -> str:
    if x != x:  # nan
        return "n/a"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def cpu_count_note() -> str:
    return f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
