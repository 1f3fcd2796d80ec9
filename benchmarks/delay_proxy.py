"""The delay line of the first benchmarks, under its old command line: ``link.py`` without a rate.

    python benchmarks/delay_proxy.py TARGET_PORT RTT_MS

The same as ``python benchmarks/link.py --target 127.0.0.1:TARGET_PORT --rtt RTT_MSms``: prints
``LISTENING <port>`` and forwards every connection to ``127.0.0.1:TARGET_PORT`` until SIGTERM or
until its stdin closes. Each direction's bytes are held for RTT/2; bandwidth is not limited, so
a protocol that keeps one chunk in flight per round trip shows its real cost. A direction holds
at most 64 MiB in transit: past that the proxy stops reading it (TCP backpressure). For a rate
and a finite queue as well, use ``link.py`` (``_harness.link``).
"""

from __future__ import annotations

import sys

import link

if __name__ == "__main__":
    link.main(["--target", f"127.0.0.1:{sys.argv[1]}", "--rtt", f"{sys.argv[2]}ms"])
