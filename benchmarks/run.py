"""Run every benchmark, print a summary table, write results/latest.json and a PNG chart.

    python benchmarks/run.py [--quick | --smoke] [--no-chart] [--only throughput,latency,...]

``--quick`` takes about 5 minutes, the full suite under 15, ``--smoke`` under a minute (a few
MiB per measurement: it checks that every benchmark still runs, not how fast). Each benchmark
prints its own lines as it goes; the table at the end repeats the headline figures and the
targets of the benchmarks issue. The chart (throughput vs RTT, peak memory vs file size) needs
matplotlib, which is not a dependency of sio_stream: ``pip install matplotlib`` into the venv;
without it the chart is skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import cluster
import concurrency
import fanout
import files
import guides
import hostile
import latency
import links
import memory
import objects
import quiet
import stalled
import sync
import throughput
from _harness import HERE, cpu_count_note, mode_of, verdict

BENCHES = {
    "throughput": throughput,
    "latency": latency,
    "links": links,
    "memory": memory,
    "concurrency": concurrency,
    "quiet": quiet,
    "objects": objects,
    "files": files,
    "guides": guides,
    "fanout": fanout,
    "hostile": hostile,
    "stalled": stalled,
    "cluster": cluster,
    "sync": sync,
}
# cpu.py is throughput.py's CPU lines: they come with the throughput run here.


def sub_args(module: Any, args: argparse.Namespace) -> argparse.Namespace:
    argv = ["--quick"] if args.quick else ["--smoke"] if args.smoke else []
    return module.parser().parse_args(argv)


def summary(results: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(bench, measurement, value, target verdict) for every row that has a target, plus headlines."""
    rows = []
    for bench, out in results.items():
        for row in out.get("rows", []):
            if "target" not in row:
                continue
            ratios = ", ".join(f"x{v:.2f} {k}" for k, v in row["ratios"].items())
            value = f"{row['value']:.3g} {row['unit']}" + (f" ({ratios})" if ratios else "")
            rows.append((bench, row["name"], value, f"{row['target']}: {verdict(row['met'])}"))
    return rows


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(4)] if rows else [0] * 4
    header = ("bench", "measurement", "value", "target")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    fmt = " | ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*header))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(fmt.format(*r))


def chart(results: dict[str, dict[str, Any]], path: Path) -> str:
    try:
        import matplotlib  # lazily: only the chart needs it

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: no chart (pip install matplotlib)"
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    lat = results.get("latency", {}).get("rows", [])
    ax = axes[0]
    for impl in ("sio", "raw", "js"):
        for op, style in (("upload", "-"), ("download", "--")):
            pts = sorted(
                (r["rtt_ms"], r["value"]) for r in lat if r.get("impl") == impl and r.get("op") == op
            )
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", label=f"{impl} {op}")
    ax.set_xlabel("RTT (ms)")
    ax.set_ylabel("MB/s")
    ax.set_yscale("log")
    ax.set_title("Throughput vs RTT")
    ax.legend(fontsize=7)
    mem = results.get("memory", {}).get("rows", [])
    ax = axes[1]
    for impl in ("sio", "raw"):
        for op in ("upload", "download"):
            for side, style in (("client", "-"), ("server", "--")):
                pts = sorted(
                    (r["size"] / 2**20, r["value"])
                    for r in mem
                    if r.get("impl") == impl and r.get("op") == op and r.get("side") == side and "size" in r
                )
                if pts:
                    ax.plot(
                        [p[0] for p in pts],
                        [p[1] for p in pts],
                        style,
                        marker="o",
                        label=f"{impl} {op} {side}",
                    )
    ax.set_xlabel("file size (MiB)")
    ax.set_ylabel("peak RSS - idle RSS (MiB)")
    ax.set_xscale("log")
    ax.set_title("Memory vs size")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"chart: {path}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--only", default=None, help="comma-separated subset of " + ",".join(BENCHES))
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument(
        "--out", type=Path, default=HERE / "results", help="directory for latest.json / chart"
    )
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHES)
    started = time.time()
    print(
        f"# sio_stream benchmarks, {mode_of(args)} mode, {cpu_count_note()}, "
        f"Python {platform.python_version()}"
    )
    results: dict[str, dict[str, Any]] = {}
    failed = []
    for name in names:
        t0 = time.time()
        print(f"\n## {name}", flush=True)
        try:
            results[name] = BENCHES[name].run(sub_args(BENCHES[name], args))
        except Exception as exc:  # keep going: one broken benchmark should not hide the others
            print(f"# {name} FAILED: {exc}", file=sys.stderr, flush=True)
            failed.append(name)
        print(f"# {name}: {time.time() - t0:.0f} s", flush=True)
    print(f"\n## summary ({time.time() - started:.0f} s)")
    print_table(summary(results))
    args.out.mkdir(parents=True, exist_ok=True)
    out = {
        "mode": mode_of(args),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": cpu_count_note(),
        "python": platform.python_version(),
        "seconds": round(time.time() - started, 1),
        "failed": failed,
        "results": results,
    }
    (args.out / "latest.json").write_text(json.dumps(out, indent=2))
    print(f"results: {args.out / 'latest.json'}")
    if not args.no_chart and not args.smoke:
        print(chart(results, args.out / "latest.png"))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
