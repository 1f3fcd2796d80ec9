"""The web page's assets: every one is found, the JavaScript client has one source (``js/``,
served from there in a checkout; the wheel's copy is checked by ``make dist-check``), the
vendored socket.io-client bundle matches the npm package pinned in js/package-lock.json, and the
client's own tests (node's built-in runner) pass against the Python file server and a Node
socket.io-stream server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sio_stream.cli import _web

REPO = Path(__file__).resolve().parent.parent
JS = REPO / "js"


def test_page_assets_exist() -> None:
    for name, _content_type in _web.ASSETS.values():
        assert _web.asset_file(name).is_file(), name


@pytest.mark.parametrize("name", _web.CLIENT_FILES)
def test_a_checkout_serves_the_client_from_its_one_source(name: str) -> None:
    # No copy in the package's folder: the build makes one for the wheel (setup.py).
    assert not (_web.WEB_DIR / name).exists()
    assert _web.asset_file(name) == JS / name


def test_the_vendored_socketio_bundle_matches_the_pinned_npm_package() -> None:
    source = JS / "node_modules" / "socket.io-client" / "dist" / "socket.io.esm.min.js"
    if not source.exists():
        pytest.fail(f"{source} is missing: run `make node` (npm ci in js/)", pytrace=False)
    shipped = _web.WEB_DIR / "socket.io.esm.min.js"
    assert shipped.read_bytes() == source.read_bytes(), f"run `make web` to copy {source}"


def test_js_client_node_tests() -> None:
    node = shutil.which("node")
    if node is None or not (JS / "node_modules").is_dir():
        pytest.fail("node and js/node_modules are needed: install Node 20, then `make node`", pytrace=False)
    env = {**os.environ, "SIO_STREAM_PYTHON": sys.executable}
    result = subprocess.run(
        [node, "--test", "--test-timeout=120000", "test/"],
        cwd=JS,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout


def test_the_page_prints_sizes_and_rates_as_the_cli_does() -> None:
    # One convention (issue 25): binary sizes (KiB, MiB, GiB), decimal MB/s. The page's own
    # functions, cut out of app.js, run in node beside the CLI's.
    import json
    import re

    from sio_stream.cli._progress import format_rate, format_size

    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed: install Node 20", pytrace=False)
    page = (_web.WEB_DIR / "app.js").read_text()
    functions = [
        re.search(rf"^function {name}\(.*?^}}$", page, re.M | re.S) for name in ("formatSize", "formatRate")
    ]
    assert all(functions), "app.js has no formatSize/formatRate"
    sizes = [0, 1, 1023, 1024, 1536, 1_000_000, 400 * 1024 * 1024, 3 * 1024**3 + 1, 5 * 1024**4]
    rates = [0, 999_999, 120_300_000, 1.5e9]
    calls = f"[{json.dumps(sizes)}.map(formatSize), {json.dumps(rates)}.map(formatRate)]"
    script = "\n".join(f.group(0) for f in functions if f) + f"\nconsole.log(JSON.stringify({calls}))"
    result = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    page_sizes, page_rates = json.loads(result.stdout)
    assert page_sizes == [format_size(n) for n in sizes]
    assert page_rates == [format_rate(int(n), 1.0) for n in rates]
    assert "400.0 MiB" in page_sizes
