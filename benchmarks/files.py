"""Files at the stream's speed: file -> stream -> file against one in-memory stream and curl.

    python benchmarks/files.py [--size MiB] [--quick | --smoke] [--repeat N] [--no-demo]
                               [--lib-only] [--compare OTHER_CHECKOUT] [--malloc-kept]

Every process is separate, on 127.0.0.1, and every contestant runs once per round (rounds
interleaved, median reported), so the ratios compare figures of the same run:

* ``in-memory``: one sio_stream stream moving bytes from memory to nowhere (``peer.py``
  ``upload`` / ``download``): the speed a file transfer should reach (target: >= 0.8x);
* ``send_file/receive_file``: the library helpers, file -> stream -> file (``peer.py``
  ``lib-file-upload`` / ``lib-file-download``), with the peak RSS of both processes above
  their idle RSS (target: <= 64 MiB);
* ``cli get`` / ``cli put``: ``sio-stream get`` / ``put`` against ``sio-stream serve``, the
  rate the command prints (its own timing, which leaves out connecting and the sha256 it
  computes before a transfer); peak RSS of the server (``/proc``, peak reset before each
  transfer) and of the client process (``wait4``) against ``sio-stream ls`` as its idle;
* ``cli demo``: the rate ``sio-stream demo`` prints (server in a child process);
* ``resume``: ``sio-stream get`` of the file cut 20 times at random points (the client killed
  with SIGKILL, or interrupted with SIGINT, which drops its connection), each time run again to
  continue; the file must come out byte-identical and each cut may re-send at most a window's
  worth of data (the server logs the bytes it handed to each broken stream; re-sent = those
  minus what the client had stored);
* ``curl``: ``/usr/bin/curl`` downloading the same file from an aiohttp static route: what a
  plain HTTP download does on this machine (skipped with a note when curl is missing).

``--compare DIR`` runs the library's transfers (the in-memory stream and the helpers) a second
time in every round with the sio_stream of another checkout (``PYTHONPATH=DIR``, its own server
process; same ``peer.py``): lines marked ``[DIR]``, an A/B measured in the same session.
``--malloc-kept`` runs them once more in processes with the malloc thresholds ``sio-stream``
sets for its own process (``sio_stream/_malloc.py``, here as ``GLIBC_TUNABLES``): lines
marked ``[malloc kept]``, what an application that sets them gets. Without them glibc hands
chunk-sized blocks freed at the top of its heap back to the kernel and faults them in again
until its dynamic thresholds have grown: a transfer in a fresh server process faulted
40,000-70,000 times per 512 MiB where the thresholds left 3,000-4,000 (``perf stat``). The
servers here have run transfers before the measured ones, so their thresholds grew already:
the page-fault lines (per GiB, the client's start-up left out) show what is left.
``--lib-only`` leaves out the commands, curl and the demo.

Each transfer starts after ``os.sync()``: once a GiB or two of written files wait for the
kernel's writeback, a writer's CPU per GiB measured 2-3x higher (ext4, this machine), so
without it each contestant paid for the dirty pages of those before it.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from _harness import (
    PYTHON,
    SIO,
    MiB,
    Report,
    _process,
    common_args,
    cpu_per_gib,
    make_file,
    mb_s,
    median,
    mode_of,
    ratio,
    run_client,
    server,
    size_label,
)
from peer import memory_kib, reset_peak

SIZES = {"full": 512 * MiB, "quick": 128 * MiB, "smoke": 4 * MiB}
RESUME_SIZES = {"full": 1024 * MiB, "quick": 256 * MiB, "smoke": 8 * MiB}
#: Cuts of the resume line (a smoke run only checks that it works: each cut starts a process).
RESUME_CUTS = {"full": 20, "quick": 20, "smoke": 4}
#: What one cut may re-send: the reader's window (4 x 512 KiB) plus the writer's buffer and
#: read-ahead and the reader's write-behind (each a few chunks): data in flight when the cut came.
RESUME_TARGET_MIB = 2 * 2 + 2
REPEATS = {"full": 3, "quick": 3, "smoke": 1}
RATE_TARGET = 0.8
#: A verified file transfer's CPU per GiB (both processes) against the in-memory stream's.
CPU_TARGET = 1.5
PEAK_TARGET_MIB = 64
CURL = shutil.which("curl") or "/usr/bin/curl"
CLI = [PYTHON, "-m", "sio_stream"]
ROOT = Path(__file__).resolve().parent.parent


# -- processes ------------------------------------------------------------------------------------
def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


class Served:
    """``sio-stream serve DIR --port 0`` in a child process, with its /proc memory figures."""

    def __init__(self, directory: Path, log: Any = None) -> None:
        self.proc = subprocess.Popen(
            # --resume-timeout 0: sio-stream get/put never reconnect, so a cut (killed) get
            # would otherwise hold its server transfer, and the log line resume_run waits for,
            # for the 30 s a reconnecting client may take.
            [
                *CLI,
                "serve",
                str(directory),
                "--port",
                "0",
                "--resume-timeout",
                "0",
                *([] if log else ["--quiet"]),
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=_env(),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"http://\S+?(?=[;\s]|$)", line)
        if match is None:
            self.close()
            raise RuntimeError(f"sio-stream serve did not start: {line!r}")
        self.url = match.group(0)

    def memory_kib(self) -> dict[str, int]:
        return memory_kib(self.proc.pid)

    def reset_peak(self) -> int:
        """Reset the server's VmHWM to its RSS; return that RSS (KiB): its idle figure."""
        reset_peak(self.proc.pid)
        return self.memory_kib()["VmRSS"]

    def close(self) -> None:
        # SIGTERM to this one child (its pid), SIGKILL if it lingers.
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def served(directory: Path, log: Any = None) -> Iterator[Served]:
    s = Served(directory, log)
    try:
        yield s
    finally:
        s.close()


def run_cli_rss(*args: str, timeout: float = 600) -> tuple[str, int]:
    """Run ``sio-stream ARGS``; return its stdout and its own peak RSS in KiB (wait4)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([*CLI, *args], stdout=out, stderr=err, text=True, env=_env())
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise RuntimeError(f"sio-stream {' '.join(args)} timed out")
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(
                f"sio-stream {' '.join(args)} failed ({proc.returncode}):\n{err.read()[-3000:]}"
            )
        return out.read(), usage.ru_maxrss


def cli_seconds(output: str) -> float:
    match = re.search(r" in (\d+(?:\.\d+)?) s", output)
    if match is None:
        raise RuntimeError(f"no timing in the command's output: {output!r}")
    return float(match.group(1))


def demo_rate(output: str) -> float:
    match = re.search(r": (\d+(?:\.\d+)?) MB/s", output)
    if match is None:
        raise RuntimeError(f"no rate in the demo's output: {output!r}")
    return float(match.group(1))


def malloc_kept() -> dict[str, str]:
    """The environment that gives a process the malloc thresholds ``sio-stream`` sets for its own."""
    from sio_stream._malloc import MMAP_THRESHOLD, TRIM_THRESHOLD

    return {
        "GLIBC_TUNABLES": f"glibc.malloc.trim_threshold={TRIM_THRESHOLD}:"
        f"glibc.malloc.mmap_threshold={MMAP_THRESHOLD}"
    }


#: A contestant of the library lines: the checkout its processes import (None: this one), and
#: what their environment adds.
Contestant = tuple[str | None, dict[str, str]]


@contextmanager
def library(contestant: Contestant) -> Iterator[None]:
    """Processes started inside import sio_stream from the contestant's checkout, with its environment."""
    checkout, extra = contestant
    changes = dict(extra)
    if checkout is not None:
        changes["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(Path(checkout).resolve()), os.environ.get("PYTHONPATH")])
        )
    saved = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def minor_faults(pid: int) -> int:
    """The page faults a running process has taken so far (all threads; /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def children_minor_faults() -> int:
    """The page faults of this process's finished children (the client processes)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt


# -- the curl baseline ------------------------------------------------------------------------------
def static_server(directory: str) -> None:
    """``files.py --static DIR``: an aiohttp static route over DIR; prints ``LISTENING <port>``."""
    import asyncio

    from aiohttp import web

    async def main() -> None:
        app = web.Application()
        app.router.add_static("/", directory)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(f"LISTENING {site._server.sockets[0].getsockname()[1]}", flush=True)  # type: ignore[union-attr]
        loop = asyncio.get_running_loop()
        # Stop when the harness closes our stdin.
        await loop.run_in_executor(None, sys.stdin.read)
        await runner.cleanup()

    asyncio.run(main())


def curl_rate(url: str, dst: Path) -> float:
    done = subprocess.run(
        [CURL, "-s", "-f", "-o", str(dst), "-w", "%{size_download} %{time_total}", url],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    size, seconds = done.stdout.split()
    return int(size) / float(seconds) / 1e6


# -- the run ----------------------------------------------------------------------------------------
def _sent_lines(log: Any) -> list[int]:
    """The bytes each ``get`` of resume.bin handed to its stream, from the server's access log."""
    log.seek(0)
    return [
        int(m.group(1)) if m.group(1) else 0
        for m in re.finditer(r" get 'resume\.bin' (?:(\d+) B|-) .*", log.read())
    ]


def resume_run(root: Path, local: Path, size: int, cuts_asked: int, seed: int = 10) -> dict[str, Any]:
    """Cut a ``sio-stream get`` ``cuts_asked`` times and continue it; what was re-sent per cut."""
    import random

    rng = random.Random(seed)
    src = root / "resume.bin"
    make_file(src, size)
    target = local / "resume.bin"
    partial = local / ".resume.bin.sio-part"
    started = time.monotonic()
    finished = False
    stored_at: list[int] = []  # the partial file's size before each attempt
    with tempfile.TemporaryFile("w+") as log, served(root, log) as cli:
        cuts = 0
        for cut in range(cuts_asked):
            stored = partial.stat().st_size if partial.exists() else 0
            stored_at.append(stored)
            # A random point in the next share of what is left, so the cuts spread over the
            # whole file and every one of them comes before the end.
            share = max(1, (size - stored) // (cuts_asked - cut + 1))
            point = stored + rng.randint(max(1, share // 2), share)
            with tempfile.TemporaryFile("w+") as err:
                proc = subprocess.Popen(
                    [*CLI, "get", cli.url, "resume.bin", str(target), "--no-progress"],
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    env=_env(),
                )
                deadline = time.monotonic() + 600
                while proc.poll() is None and not (partial.exists() and partial.stat().st_size >= point):
                    if time.monotonic() > deadline:
                        proc.kill()
                        raise RuntimeError("sio-stream get stopped moving before its cut")
                    time.sleep(0.002)  # a benchmark watching a file grow, not a test
                if proc.poll() is not None:
                    finished = proc.returncode == 0
                    break  # it ended before the cut
                proc.send_signal(signal.SIGKILL if cut % 2 == 0 else signal.SIGINT)
                proc.wait()
                err.seek(0)
                # A cut command prints "interrupted" (SIGINT) or nothing (SIGKILL), never a traceback.
                if "Traceback" in (text := err.read()):
                    raise RuntimeError(f"sio-stream get printed a traceback when cut:\n{text[-3000:]}")
            cuts += 1
            # The server's line for this attempt before the next one starts, so that the log's
            # lines pair with the attempts in order.
            while len(_sent_lines(log)) < cuts:
                if time.monotonic() > deadline:
                    raise RuntimeError("the server never logged a cut transfer")
                time.sleep(0.01)
        if len(stored_at) == cuts:
            stored_at.append(partial.stat().st_size if partial.exists() else 0)
        out = ""
        if not finished:
            # The attempt after the last cut: it sends the rest.
            out, _ = run_cli_rss("get", cli.url, "resume.bin", str(target), "--no-progress")
        seconds = time.monotonic() - started
        identical = target.read_bytes() == src.read_bytes() if size <= 1024 * MiB else None
        time.sleep(0.5)  # let the server write its last log lines
        sent = _sent_lines(log)
    # Each attempt's offset is what the previous ones stored; the last attempt sends the rest.
    offsets = [int(m) for m in re.findall(r"resumed at (\d+) bytes", out)]
    total_sent = sum(sent)
    resent = total_sent - size
    # Per cut: what its attempt was handed minus what it stored (SIGKILL on even cuts, SIGINT on odd).
    per_cut = [sent[i] - (stored_at[i + 1] - stored_at[i]) for i in range(min(cuts, len(sent)))]
    target.unlink(missing_ok=True)
    src.unlink()
    return {
        "cuts": cuts,
        "identical": identical,
        "resent_total": resent,
        "resent_per_cut": resent / cuts if cuts else 0.0,
        "attempts": len(sent),
        "seconds": seconds,
        "last_offset": offsets[-1] if offsets else 0,
        "killed_max": max(per_cut[0::2], default=0),
        "interrupted_max": max(per_cut[1::2], default=0),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    mode = mode_of(args)
    report = Report("files", mode)
    size = args.size * MiB if args.size else SIZES[mode]
    repeats = args.repeat or REPEATS[mode]
    have_curl = os.access(CURL, os.X_OK)
    report.note(f"{size_label(size)} per transfer, median of {repeats} interleaved rounds")
    if not have_curl:
        report.note(f"curl not found at {CURL}: the curl baseline is skipped")
    tmp = Path(tempfile.mkdtemp(prefix="sio-stream-files-"))
    rates: dict[str, list[float]] = {}
    # CPU seconds per GiB: client, server (all threads), then their event-loop threads alone.
    cpu: dict[str, list[tuple[float, float, float, float]]] = {}
    # Page faults per GiB: client (its start-up left out), server.
    faults: dict[str, list[tuple[float, float]]] = {}
    peaks: dict[str, list[float]] = {}
    try:
        root = tmp / "served"
        root.mkdir()
        src = root / "src.bin"
        make_file(src, size)
        local = tmp / "local"
        local.mkdir()
        with (
            ExitStack() as libraries,
            served(root) as cli_server,
            _process([PYTHON, __file__, "--static", str(root)], "static server") as (_, static_port),
        ):
            # The library servers: this checkout's, the compared one's, with malloc kept.
            checkouts: dict[str, Contestant] = {"": (None, {})}
            if args.compare:
                checkouts[f" [{args.compare}]"] = (args.compare, {})
            if args.malloc_kept:
                checkouts[" [malloc kept]"] = (None, malloc_kept())
            py = {}
            for tag, checkout in checkouts.items():
                with library(checkout):
                    py[tag] = libraries.enter_context(server(SIO))
            _, idle_client = run_cli_rss("ls", cli_server.url)
            lib_jobs = [
                {"op": "upload", "size": size},
                {"op": "download", "size": size},
                {"op": "lib-file-upload", "src": str(src), "dst": str(root / "up.bin"), "expect": size},
                {"op": "lib-file-download", "src": str(src), "dst": str(local / "down.bin"), "expect": size},
            ]
            for job in lib_jobs[2:]:
                job["reset_peak"] = True
            # The same two without the in-stream digest, and with sha256 instead of the default
            # ("auto": blake3 between two sio_stream peers): what hashing costs on this machine.
            # Each to a file of its own: replacing a 512 MiB file makes its receiver free the old
            # one's page cache, which would count as that transfer's CPU.
            lib_jobs += [
                dict(job, digest=digest, reset_peak=False, dst=job["dst"].replace(".bin", f"-{digest}.bin"))
                for digest in (None, "sha256")
                for job in lib_jobs[2:4]
            ]
            # Warm-up (not reported): first connections, the server's cached sha256 of src.
            warm = [dict(j, size=min(size, 4 * MiB), expect=None) for j in lib_jobs[:2]]
            # A client process's own page faults (start-up, imports, connecting): a 64 KiB upload's,
            # left out of the per-GiB counts below.
            startup: dict[str, int] = {}
            for tag, checkout in checkouts.items():
                with library(checkout):
                    run_client(SIO, py[tag].url, warm)
                    counted = children_minor_faults()
                    run_client(SIO, py[tag].url, [{"op": "upload", "size": 64 * 1024}])
                    startup[tag] = children_minor_faults() - counted
            run_cli_rss("get", cli_server.url, "src.bin", str(local / "warm.bin"), "--no-progress")
            (local / "warm.bin").unlink()
            for _ in range(repeats):
                for job, (tag, checkout) in [(j, c) for j in lib_jobs for c in checkouts.items()]:
                    os.sync()  # each transfer starts with no dirty pages of the one before
                    counted = (children_minor_faults(), minor_faults(py[tag].pid))
                    with library(checkout):
                        [result] = run_client(SIO, py[tag].url, [job])
                    gib = result["bytes"] / (1024 * MiB)
                    counts = (
                        max(children_minor_faults() - counted[0] - startup[tag], 0) / gib,
                        (minor_faults(py[tag].pid) - counted[1]) / gib,
                    )
                    if "dst" in job:
                        Path(job["dst"]).unlink()  # a full page cache of earlier outputs costs writers
                    name = {
                        "upload": "in-memory upload",
                        "download": "in-memory download",
                        "lib-file-upload": "send_file->receive_file upload",
                        "lib-file-download": "send_file->receive_file download",
                    }[result["op"]]
                    if job.get("op", "").startswith("lib-") and job.get("digest", "auto") != "auto":
                        name += f", {job['digest']}" if job["digest"] else ", digest off"
                    name += tag
                    rates.setdefault(name, []).append(mb_s(result))
                    faults.setdefault(name, []).append(counts)
                    cpu.setdefault(name, []).append(
                        (
                            cpu_per_gib(result, "client"),
                            cpu_per_gib(result, "server"),
                            cpu_per_gib(result, "client_loop"),
                            cpu_per_gib(result, "server_loop"),
                        )
                    )
                    if "client_idle" in result:
                        for side in ("client", "server"):
                            peak = result[f"{side}_mem"]["VmHWM"] - result[f"{side}_idle"]["rss_kib"]
                            peaks.setdefault(f"{name} {side}", []).append(peak / 1024)

                if args.lib_only:
                    continue
                cli_commands = {
                    "get": ("get", cli_server.url, "src.bin", str(local / "got.bin"), "--no-progress"),
                    "put": ("put", cli_server.url, str(src), "put.bin", "--no-progress"),
                }
                for verb, command in cli_commands.items():
                    os.sync()
                    idle = cli_server.reset_peak()
                    out, client_peak = run_cli_rss(*command)
                    server_peak = cli_server.memory_kib()["VmHWM"]
                    rates.setdefault(f"cli {verb}", []).append(size / cli_seconds(out) / 1e6)
                    peaks.setdefault(f"cli {verb} server", []).append((server_peak - idle) / 1024)
                    peaks.setdefault(f"cli {verb} client", []).append((client_peak - idle_client) / 1024)
                    (local / "got.bin" if verb == "get" else root / "put.bin").unlink()

                if have_curl:
                    os.sync()
                    rates.setdefault("curl aiohttp-static download", []).append(
                        curl_rate(f"http://127.0.0.1:{static_port}/src.bin", local / "curl.bin")
                    )
                    (local / "curl.bin").unlink()

                if not args.no_demo and not args.lib_only:
                    os.sync()
                    out, _ = run_cli_rss("demo", "--size", str(size), "--no-progress")
                    rates.setdefault("cli demo download", []).append(demo_rate(out))
        if not args.no_resume:
            resume_size = RESUME_SIZES[mode] if not args.size else size
            resumed = resume_run(root, local, resume_size, RESUME_CUTS[mode])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if not args.no_resume:
        per_cut = resumed["resent_per_cut"] / MiB
        report.line(
            f"resume get {size_label(resume_size)}, {resumed['cuts']} cuts, byte-identical="
            f"{resumed['identical']}, re-sent {resumed['resent_total'] / MiB:.1f} MiB in all, at most "
            f"{resumed['killed_max'] / MiB:.2f} MiB after a SIGKILL and "
            f"{resumed['interrupted_max'] / MiB:.2f} MiB after a SIGINT",
            per_cut,
            "MiB re-sent per cut",
            {},
            f"<={RESUME_TARGET_MIB}MiB/cut",
            resumed["identical"] is not False and per_cut <= RESUME_TARGET_MIB,
            runs=[resumed["attempts"], round(resumed["seconds"], 1)],
        )
    rate = {name: median(values) for name, values in rates.items()}
    curl = rate.get("curl aiohttp-static download")
    for name, value in rate.items():
        direction = "upload" if "upload" in name or name.endswith("put") else "download"
        ratios: dict[str, float] = {}
        target = met = None
        if not name.startswith(("in-memory", "curl")):
            # Against the in-memory stream of the same checkout.
            base = f"in-memory {direction}{_tag(name)}"
            ratios[f"in-memory {direction}"] = ratio(value, rate[base])
            # The same, taken round by round (the two under the same load) and its median.
            ratios["in-memory, round by round"] = paired(rates[name], rates[base])
            target = f">={RATE_TARGET:g}x in-memory"
            met = ratios[f"in-memory {direction}"] >= RATE_TARGET
        if curl is not None and not name.startswith("curl"):
            ratios["curl"] = ratio(value, curl)
            if name.startswith("cli") or _tag(name) == "":
                ratios["curl, round by round"] = paired(rates[name], rates["curl aiohttp-static download"])
        report.line(
            f"{name} {size_label(size)}",
            value,
            "MB/s",
            ratios,
            target,
            met,
            runs=[round(v, 1) for v in rates[name]],
        )
    cpu_line(report, cpu)
    fault_line(report, faults)
    for name, values in peaks.items():
        # The worst of the rounds: a bound must hold every time.
        value = max(values)
        report.line(
            f"{name} peak-idle",
            value,
            "MiB",
            {},
            f"<=idle+{PEAK_TARGET_MIB}MiB",
            value <= PEAK_TARGET_MIB,
            runs=[round(v, 1) for v in values],
        )
    return report.finish(args.json)


def sha256_seconds_per_gib() -> float:
    """What hashlib's sha256 costs per GiB in this process (one core), now."""
    import hashlib

    block = os.urandom(MiB)
    hasher = hashlib.sha256()
    started = time.process_time()
    for _ in range(256):
        hasher.update(block)
    return (time.process_time() - started) * 4


def cpu_line(report: Report, cpu: dict[str, list[tuple[float, float, float, float]]]) -> None:
    """Where the CPU goes: each contestant's CPU seconds per GiB (medians), with two ceilings as
    ratios of the in-memory stream's rate:

    * on these cores: the in-memory stream's CPU per GiB over the line's (both processes, all
      threads): the most it can reach when the in-memory stream already keeps every core busy;
    * with a core per thread: the in-memory stream's busiest event-loop thread over the line's
      (file reads, writes and hashing run in worker threads, which more cores run beside the
      loops): an estimate for a machine with spare cores, not a measurement.

    A verified transfer's line (the default digest) also has its CPU per GiB over the in-memory
    stream's, taken round by round (the two ran minutes apart at most, under the same load from
    the machine's other users) and the median of those: the figure the target is about.
    """
    cores = os.cpu_count() or 1
    hashing = sha256_seconds_per_gib()
    report.note(
        f"{cores} cores; sha256 costs {hashing:.2f} CPU s/GiB here, paid by both sides of a "
        "verified transfer (in worker threads)"
    )
    figures = {name: [median([v[i] for v in values]) for i in range(4)] for name, values in cpu.items()}
    for name, (client, serving, client_loop, server_loop) in figures.items():
        direction = "upload" if "upload" in name else "download"
        base = figures.get(f"in-memory {direction}{_tag(name)}")
        ratios: dict[str, float] = {}
        target = met = None
        if base is not None and not name.startswith("in-memory"):
            ratios["in-memory: ceiling on these cores"] = ratio(base[0] + base[1], client + serving)
            ratios["with a core per thread"] = ratio(max(base[2:]), max(client_loop, server_loop))
            if ", " not in name:  # verified with the default digest
                by_round = paired(
                    [v[0] + v[1] for v in cpu[name]],
                    [b[0] + b[1] for b in cpu[f"in-memory {direction}{_tag(name)}"]],
                )
                ratios["in-memory CPU, round by round"] = by_round
                target = f"<={CPU_TARGET:g}x in-memory CPU"
                met = by_round <= CPU_TARGET
        report.line(
            f"{name} CPU client {client:.2f} + server {serving:.2f} (loops {client_loop:.2f} + "
            f"{server_loop:.2f})",
            client + serving,
            "CPU s/GiB",
            ratios,
            target,
            met,
        )


def fault_line(report: Report, faults: dict[str, list[tuple[float, float]]]) -> None:
    """Page faults per GiB of each contestant (medians): a count of the kernel's, which the
    machine's load moves less than CPU time. A chunk-sized block that malloc handed back to the
    kernel and allocated again faults 128 times (4 KiB pages). The client's figure leaves out a
    client process's own (start-up, imports, connecting: those of a 64 KiB upload)."""
    for name, values in faults.items():
        client, serving = (median([v[i] for v in values]) for i in range(2))
        direction = "upload" if "upload" in name else "download"
        base = faults.get(f"in-memory {direction}{_tag(name)}")
        ratios: dict[str, float] = {}
        if base is not None and not name.startswith("in-memory"):
            ratios[f"in-memory {direction}"] = ratio(
                client + serving, median([v[0] for v in base]) + median([v[1] for v in base])
            )
        report.line(
            f"{name} page faults client {client:,.0f} + server {serving:,.0f}",
            client + serving,
            "faults/GiB",
            ratios,
            runs=[round(sum(v)) for v in values],
        )


def paired(values: list[float], bases: list[float]) -> float:
    """The median of ``values[i] / bases[i]``: figures of the same round over each other."""
    return median([ratio(value, base) for value, base in zip(values, bases, strict=False)])


def _tag(name: str) -> str:
    """The `` [DIR]`` a compared checkout's line ends with, else ``""``."""
    match = re.search(r" \[[^\]]*\]$", name)
    return match.group(0) if match else ""


def parser() -> argparse.ArgumentParser:
    p = common_args(__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=None, help="MiB per transfer (default 512; quick 128)")
    p.add_argument("--no-demo", action="store_true", help="skip `sio-stream demo`")
    p.add_argument("--no-resume", action="store_true", help="skip the resume line")
    p.add_argument("--lib-only", action="store_true", help="only the library's transfers")
    p.add_argument(
        "--malloc-kept",
        action="store_true",
        help="also run the library transfers with the malloc thresholds sio-stream sets",
    )
    p.add_argument(
        "--compare", default=None, metavar="DIR", help="also run the library transfers of the checkout at DIR"
    )
    p.add_argument("--static", default=None, help=argparse.SUPPRESS)
    return p


if __name__ == "__main__":
    parsed = parser().parse_args()
    if parsed.static:
        static_server(parsed.static)
    else:
        run(parsed)
