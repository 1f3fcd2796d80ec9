"""Build the wheel and the sdist, check them, and install each into a fresh venv.

Run by ``make dist-check`` (and so by CI). Fails when the build prints a warning, when
``twine check --strict`` complains, when a distribution lacks ``py.typed`` (the package is
typed) or carries files it should not, when the wheel's copy of the JavaScript client is not its
source ``js/sio-stream.js`` (setup.py copies it), or when an installed copy does not import,
report its version, run its command or serve the client on its web page. Nothing is written to
the work tree: everything happens in a temporary directory, and the installed copies run there
(not in the checkout, whose sio_stream would be imported instead).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# pip's own notes about this machine's package index configuration, not about our package.
NOISE = re.compile(r"^WARNING: Location '.*' is ignored", re.M)


#: The JavaScript client: one source in js/, copied into the wheel beside the page by setup.py.
CLIENT_FILES = ("sio-stream.js", "sio-stream.d.ts")
#: Run by an installed copy: its web page serves the client (the bytes go to the file argv[1]).
SERVE_CLIENT = """
import asyncio, sys
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sio_stream.cli import _web

async def main():
    app = web.Application()
    _web.add_page(app, {})
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/sio-stream.js")
        assert response.status == 200, response.status
        with open(sys.argv[1], "wb") as file:
            file.write(await response.read())

asyncio.run(main())
"""


def run(*command: str | Path, env: dict[str, str] | None = None, cwd: Path = ROOT) -> str:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, env=env, cwd=cwd)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        sys.exit(f"dist-check: {' '.join(map(str, command))} failed:\n{output}")
    return output


def warnings_in(output: str) -> list[str]:
    return [line for line in NOISE.sub("", output).splitlines() if re.search(r"warn", line, re.I)]


def main() -> None:
    version = run(sys.executable, "-c", "import sio_stream; print(sio_stream.__version__)").strip()
    with tempfile.TemporaryDirectory() as tmp:
        dist = Path(tmp, "dist")
        # Byte-compiling off in this environment only makes setuptools say so (a warning).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        output = run(sys.executable, "-m", "build", "--outdir", dist, ROOT, env=env)
        if found := warnings_in(output):
            sys.exit("dist-check: the build warned:\n" + "\n".join(found))
        wheels = list(dist.glob("*.whl"))
        sdists = list(dist.glob("*.tar.gz"))
        assert len(wheels) == 1 and len(sdists) == 1, list(dist.iterdir())
        wheel, sdist = wheels[0], sdists[0]
        assert f"-{version}-" in wheel.name and sdist.name.endswith(f"-{version}.tar.gz"), (wheel, sdist)
        run(sys.executable, "-m", "twine", "check", "--strict", *dist.iterdir())

        with zipfile.ZipFile(wheel) as archive:
            wheel_files = archive.namelist()
            for name in CLIENT_FILES:
                copy = archive.read(f"sio_stream/cli/web/{name}")
                assert copy == (ROOT / "js" / name).read_bytes(), f"the wheel's {name} is not js/{name}"
        assert "sio_stream/py.typed" in wheel_files, wheel_files
        assert all(name.startswith(("sio_stream/", "sio_stream-")) for name in wheel_files), wheel_files
        with tarfile.open(sdist) as archive:
            sdist_files = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
        for needed in (
            "sio_stream/py.typed",
            "README.md",
            "CHANGELOG.md",
            "LICENSE",
            "pyproject.toml",
            "setup.py",
        ):
            assert needed in sdist_files, (needed, sdist_files)
        assert not any(name.startswith(("tests/", "docs/", "benchmarks/")) for name in sdist_files), (
            sdist_files
        )

        for artifact in (wheel, sdist):
            venv = Path(tmp, "venv-" + artifact.name)
            run(sys.executable, "-m", "venv", venv)
            python = venv / "bin" / "python"
            # With the server extra: the installed page must serve the client.
            output = run(
                python,
                "-m",
                "pip",
                "install",
                "-c",
                ROOT / "requirements.lock",
                f"{artifact}[server]",
                env=env,
            )
            if found := warnings_in(output):
                sys.exit(f"dist-check: installing {artifact.name} warned:\n" + "\n".join(found))
            check = (
                "import importlib.metadata as m, importlib.resources as r, sio_stream;"
                f"assert sio_stream.__version__ == m.version('sio-stream') == {version!r};"
                "assert (r.files('sio_stream') / 'py.typed').is_file();"
                "from sio_stream import *"
            )
            run(python, "-c", check, cwd=Path(tmp))
            run(venv / "bin" / "sio-stream", "--help", cwd=Path(tmp))
            served = Path(tmp, "served-" + artifact.name)
            run(python, "-c", SERVE_CLIENT, served, cwd=Path(tmp))
            assert served.read_bytes() == (ROOT / "js" / "sio-stream.js").read_bytes(), artifact.name
            print(f"dist-check: {artifact.name} installs cleanly")
    print("dist-check: ok (build, twine check, wheel and sdist installs, the page serves the client)")


if __name__ == "__main__":
    main()
