"""Peak memory of a file -> stream -> file transfer, both processes, against their idle RSS.

    python benchmarks/memory.py [--sizes 100,1024] [--quick | --smoke]

For each size, direction (upload: client file -> server file; download: server file -> client
file) and implementation (sio_stream defaults; the raw python-socketio baseline with 8 acked
256 KiB emits in flight), a fresh server and client process are started and connected; both
reset their peak RSS (``echo 5 > /proc/self/clear_refs``) and note VmRSS (idle), then move the
file in 256 KiB reads/writes; the peak is VmHWM afterwards. Reported: peak - idle per process.
Targets (sio_stream): at most idle + 64 MiB for the largest file, and the largest file's peak
within 8 MiB of the smallest's (memory must not grow with the size). Files live in a temporary
directory and are deleted afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from _harness import (
    DEFAULT_CHUNK,
    DEFAULT_WINDOW,
    LABELS,
    RAW,
    SIO,
    MiB,
    Report,
    common_args,
    make_file,
    mb_s,
    mode_of,
    ratio,
    run_client,
    server,
    size_label,
)

SIZES = {"full": (100, 1024), "quick": (64, 640), "smoke": (4, 16)}
DIRECTIONS = ("upload", "download")
PEAK_TARGET_MIB = 64
GROWTH_TARGET_MIB = 8


def run(args: argparse.Namespace) -> dict[str, Any]:
    mode = mode_of(args)
    report = Report("memory", mode)
    sizes = [int(s) * MiB for s in args.sizes.split(",")] if args.sizes else [s * MiB for s in SIZES[mode]]
    tmp = Path(tempfile.mkdtemp(prefix="sio-stream-bench-"))
    growth: dict[tuple[str, str, str], dict[int, float]] = {}
    try:
        for size in sizes:
            src = tmp / f"src-{size}"
            make_file(src, size)
            for op in DIRECTIONS:
                peaks: dict[str, dict[str, float]] = {}
                for impl in (SIO, RAW):
                    dst = tmp / f"dst-{impl}-{op}"
                    job = {
                        "op": f"file-{op}",
                        "src": str(src),
                        "dst": str(dst),
                        "write": DEFAULT_CHUNK,
                        "window": DEFAULT_WINDOW,
                        "reset_peak": True,
                        "expect": size,
                    }
                    with server(SIO) as py:
                        (result,) = run_client(impl, py.url, [job])
                    if dst.stat().st_size != size:
                        raise RuntimeError(f"{impl} {op}: {dst.stat().st_size} bytes written, not {size}")
                    dst.unlink()
                    peaks[impl] = {
                        "client": (result["client_mem"]["VmHWM"] - result["client_idle"]["rss_kib"]) / 1024,
                        "server": (result["server_mem"]["VmHWM"] - result["server_idle"]["rss_kib"]) / 1024,
                        "client_idle": result["client_idle"]["rss_kib"] / 1024,
                        "server_idle": result["server_idle"]["rss_kib"] / 1024,
                        "mb_s": mb_s(result),
                    }
                for impl in (SIO, RAW):
                    for side in ("client", "server"):
                        value = peaks[impl][side]
                        growth.setdefault((impl, op, side), {})[size] = value
                        target = met = None
                        if impl == SIO:
                            target = f"<=idle+{PEAK_TARGET_MIB}MiB"
                            met = value <= PEAK_TARGET_MIB
                        report.line(
                            f"{op} {size_label(size)} {LABELS[impl]} {side} peak-idle",
                            value,
                            "MiB",
                            {LABELS[RAW]: ratio(value, peaks[RAW][side])} if impl == SIO else {},
                            target,
                            met,
                            impl=impl,
                            op=op,
                            side=side,
                            size=size,
                            idle_mib=peaks[impl][f"{side}_idle"],
                            mb_s=round(peaks[impl]["mb_s"], 1),
                            note=f"idle {peaks[impl][f'{side}_idle']:.0f} MiB, "
                            f"{peaks[impl]['mb_s']:.0f} MB/s",
                        )
            src.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if len(sizes) > 1:
        small, large = min(sizes), max(sizes)
        for (impl, op, side), by_size in growth.items():
            diff = by_size[large] - by_size[small]
            report.line(
                f"growth {size_label(small)}->{size_label(large)} {op} {LABELS[impl]} {side}",
                diff,
                "MiB",
                {},
                f"<={GROWTH_TARGET_MIB}MiB" if impl == SIO else None,
                abs(diff) <= GROWTH_TARGET_MIB if impl == SIO else None,
                impl=impl,
                op=op,
                side=side,
            )
    return report.finish(args.json)


def parser() -> argparse.ArgumentParser:
    p = common_args(__doc__.split("\n")[0])
    p.add_argument("--sizes", default=None, help="comma-separated MiB (default 100,1024; quick 64,640)")
    return p


if __name__ == "__main__":
    run(parser().parse_args())
