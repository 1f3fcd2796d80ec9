"""The JavaScript client's npm package: `npm pack` ships the module, its types and package.json,
nothing else (no tests, no node_modules), at the version of the Python package."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import sio_stream

JS = Path(__file__).resolve().parent.parent / "js"


def test_npm_pack_ships_the_client_and_its_types_only() -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed (Node 20 with npm)", pytrace=False)
    done = subprocess.run(
        [npm, "pack", "--dry-run", "--json"], cwd=JS, capture_output=True, text=True, timeout=120, check=True
    )
    (package,) = json.loads(done.stdout)
    assert sorted(entry["path"] for entry in package["files"]) == [
        "package.json",
        "sio-stream.d.ts",
        "sio-stream.js",
    ]
    assert package["version"] == sio_stream.__version__
    manifest = json.loads((JS / "package.json").read_text())
    assert manifest["types"] == "sio-stream.d.ts" and manifest["peerDependencies"]["socket.io-client"]
