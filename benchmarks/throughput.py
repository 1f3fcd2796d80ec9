"""Throughput of one stream on loopback, upload and download, plus CPU seconds per GiB.

    python benchmarks/throughput.py [--size MiB] [--quick | --smoke] [--repeat N]
    python benchmarks/throughput.py --sweep [--sweep-rtt MS]

Contestants, each in its own server and client process on 127.0.0.1:

* ``sio_stream`` with its defaults (window 8, 256 KiB chunks; application writes of 256 KiB);
* ``raw-socketio``: the same bytes as python-socketio binary events, each acked, with ``window``
  (8) unacknowledged emits in flight, same chunk size: what a hand-rolled transfer costs;
* ``raw-aiohttp-ws``: a bare aiohttp WebSocket (no Socket.IO) moving the same bytes in binary
  messages of the chunk size: the transport every stream rides on (target: sio_stream >= 0.9x);
* ``js-ss-0.9.1``: socket.io-stream 0.9.1 defaults between a Node client and a Node server
  (64 KiB application writes, which it sends one ``$stream-write`` each, stop-and-wait).

The contestants run interleaved (``--repeat`` rounds) and each figure is the median; ratios
compare medians of the same run. ``--sweep`` measures sio_stream over chunk size x window (one
server, one namespace per setting) against the defaults measured in the same run; with
``--sweep-rtt`` through the delay proxy.
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

from _harness import (
    DEFAULT_CHUNK,
    DEFAULT_WINDOW,
    JS,
    JS_WRITE,
    LABELS,
    RAW,
    RAW_WS,
    SIO,
    MiB,
    Report,
    common_args,
    cpu_per_gib,
    delay_proxy,
    ensure_node,
    mb_s,
    median,
    mode_of,
    ratio,
    run_client,
    server,
    size_label,
)

SIZES = {"full": 200 * MiB, "quick": 100 * MiB, "smoke": 4 * MiB}
REPEATS = {"full": 5, "quick": 3, "smoke": 1}
SWEEP_CHUNKS = (64 * 1024, 128 * 1024, 256 * 1024, 512 * 1024)
SWEEP_WINDOWS = (2, 4, 8, 16)
DIRECTIONS = ("upload", "download")
#: Targets of the benchmarks issue (loopback): ratios of sio_stream's MB/s.
TARGETS = {
    ("upload", RAW): 1.0,
    ("download", RAW): 1.0,
    ("upload", RAW_WS): 0.9,
    ("download", RAW_WS): 0.9,
    ("upload", JS): 3.0,
    ("download", JS): 2.5,
}
CPU_TARGET = 1.2


def jobs_for(impl: str, size: int) -> list[dict[str, Any]]:
    write = JS_WRITE if impl == JS else DEFAULT_CHUNK
    return [{"op": op, "size": size, "write": write, "window": DEFAULT_WINDOW} for op in DIRECTIONS]


def measure(impls: list[str], size: int, repeats: int) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Interleaved rounds of upload+download per implementation; raw results by (impl, op)."""
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with server(SIO) as py, server(JS) if JS in impls else _null() as js:
        urls = {SIO: py.url, RAW: py.url, RAW_WS: py.url, JS: js.url if js else ""}
        warm = max(size // 8, 1 * MiB)
        for impl in impls:  # warm-up: first connections, pools, JIT; not reported
            run_client(impl, urls[impl], jobs_for(impl, warm))
        for _ in range(repeats):
            for impl in impls:
                for result in run_client(impl, urls[impl], jobs_for(impl, size)):
                    results.setdefault((impl, result["op"]), []).append(result)
    return results


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def report_throughput(
    report: Report, results: dict[tuple[str, str], list[dict[str, Any]]], size: int
) -> None:
    impls = [i for i in (SIO, RAW, RAW_WS, JS) if (i, "upload") in results]
    for op in DIRECTIONS:
        rate = {impl: median([mb_s(r) for r in results[(impl, op)]]) for impl in impls}
        for impl in impls:
            ratios = {LABELS[b]: ratio(rate[impl], rate[b]) for b in impls if b != impl}
            target = met = None
            if impl == SIO:
                wanted = {b: TARGETS[(op, b)] for b in impls if (op, b) in TARGETS}
                target = ", ".join(f">={v:g}x {LABELS[b]}" for b, v in wanted.items())
                met = all(ratio(rate[SIO], rate[b]) >= v for b, v in wanted.items())
            report.line(
                f"{op} {LABELS[impl]} {size_label(size)}",
                rate[impl],
                "MB/s",
                ratios,
                target,
                met,
                impl=impl,
                op=op,
                runs=[round(mb_s(r), 1) for r in results[(impl, op)]],
            )


def report_cpu(report: Report, results: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    impls = [i for i in (SIO, RAW, RAW_WS, JS) if (i, "upload") in results]
    for op in DIRECTIONS:
        per: dict[str, dict[str, float]] = {}
        for impl in impls:
            runs = results[(impl, op)]
            # Summed over the rounds: /proc counts CPU in 10 ms ticks, too coarse for one short run.
            total_bytes = sum(r["bytes"] for r in runs)
            per[impl] = {
                side: cpu_per_gib(
                    {"bytes": total_bytes, f"{side}_cpu": sum(r[f"{side}_cpu"] for r in runs)}, side
                )
                for side in ("client", "server")
            }
            per[impl]["total"] = per[impl]["client"] + per[impl]["server"]
        for impl in impls:
            for side in ("client", "server", "total"):
                ratios = {LABELS[RAW]: ratio(per[impl][side], per[RAW][side])} if impl != RAW else {}
                target = met = None
                if impl == SIO and side == "total":
                    target = f"<={CPU_TARGET}x {LABELS[RAW]}"
                    cpu_ratio = ratio(per[SIO]["total"], per[RAW]["total"])
                    met = None if cpu_ratio != cpu_ratio else cpu_ratio <= CPU_TARGET  # nan: run too short
                report.line(
                    f"cpu {op} {LABELS[impl]} {side}",
                    per[impl][side],
                    "cpu-s/GiB",
                    ratios,
                    target,
                    met,
                    impl=impl,
                    op=op,
                    side=side,
                )


def sweep(report: Report, size: int, repeats: int, rtt_ms: float) -> dict[str, Any]:
    configs = list(itertools.product(SWEEP_WINDOWS, SWEEP_CHUNKS))
    rates: dict[tuple[int, int, str], list[float]] = {}
    with server(SIO, configs) as py, delay_proxy(py.port, rtt_ms) if rtt_ms else _null() as proxied:
        url = proxied or py.url
        jobs = [
            {
                "op": op,
                "size": size,
                "write": chunk,
                "ns_window": window,
                "ns_chunk": chunk,
                "tag": [window, chunk],
            }
            for window, chunk in configs
            for op in DIRECTIONS
        ]
        run_client(SIO, url, [dict(j, size=max(size // 8, MiB)) for j in jobs[:2]])  # warm-up
        for _ in range(repeats):
            for result, job in zip(run_client(SIO, url, jobs), jobs, strict=True):
                window, chunk = job["tag"]
                rates.setdefault((window, chunk, job["op"]), []).append(mb_s(result))
    where = f"RTT {rtt_ms:g} ms" if rtt_ms else "loopback"
    table: dict[str, Any] = {}
    for op in DIRECTIONS:
        base = median(rates[(DEFAULT_WINDOW, DEFAULT_CHUNK, op)])
        for window, chunk in configs:
            value = median(rates[(window, chunk, op)])
            mark = " (default)" if (window, chunk) == (DEFAULT_WINDOW, DEFAULT_CHUNK) else ""
            report.line(
                f"sweep {op} {where} w={window} c={chunk // 1024}K{mark}",
                value,
                "MB/s",
                {"default w=8 c=256K": ratio(value, base)},
                window=window,
                chunk=chunk,
                op=op,
                rtt_ms=rtt_ms,
                buffer_mib=window * chunk / MiB,
            )
            table[f"{op} w{window} c{chunk}"] = value
    # The best setting per direction, and the smallest per-stream buffer within 5 % of it.
    for op in DIRECTIONS:
        best = max(configs, key=lambda c: median(rates[(c[0], c[1], op)]))
        top = median(rates[(best[0], best[1], op)])
        frugal = min(
            (c for c in configs if median(rates[(c[0], c[1], op)]) >= 0.95 * top),
            key=lambda c: (c[0] * c[1], c[1]),
        )
        report.note(
            f"{op} {where}: best w={best[0]} c={best[1] // 1024}K ({top:.0f} MB/s); "
            "smallest buffer within 5%: "
            f"w={frugal[0]} c={frugal[1] // 1024}K ({frugal[0] * frugal[1] / MiB:g} MiB per stream)"
        )
    return table


def run(args: argparse.Namespace, *, cpu_only: bool = False) -> dict[str, Any]:
    mode = mode_of(args)
    report = Report("cpu" if cpu_only else "throughput", mode)
    repeats = args.repeat or REPEATS[mode]
    if getattr(args, "sweep", False):
        size = args.size * MiB if args.size else {"full": 64 * MiB, "quick": 16 * MiB, "smoke": 2 * MiB}[mode]
        report.note(f"sweep: {size_label(size)} per transfer, median of {repeats}, app writes = chunk size")
        sweep(report, size, repeats, args.sweep_rtt)
        return report.finish(args.json)
    size = args.size * MiB if args.size else SIZES[mode]
    impls = [SIO, RAW, RAW_WS]
    if not cpu_only and not args.no_js and ensure_node():
        impls.append(JS)
    report.note(f"{size_label(size)} per transfer, median of {repeats} interleaved rounds")
    results = measure(impls, size, repeats)
    if not cpu_only:
        report_throughput(report, results, size)
    report_cpu(report, results)
    return report.finish(args.json)


def parser() -> argparse.ArgumentParser:
    p = common_args(__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=None, help="MiB per transfer (default 200; quick 20)")
    p.add_argument("--no-js", action="store_true", help="skip the JavaScript baseline")
    p.add_argument("--sweep", action="store_true", help="sweep chunk size x window instead")
    p.add_argument("--sweep-rtt", type=float, default=0.0, help="sweep through the delay proxy (ms RTT)")
    return p


if __name__ == "__main__":
    run(parser().parse_args())
