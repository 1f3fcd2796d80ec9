"""The build's one step beyond pyproject.toml: the JavaScript client has one source, ``js/``
(its npm package), and the wheel gets a copy of it beside the web page it serves
(``sio_stream/cli/web/``). A checkout, editable installs included, serves ``js/`` itself (see
``sio_stream.cli._web.asset_file``); the sdist carries ``js/`` (MANIFEST.in) so that a wheel
built from it gets the copy too."""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

JS = Path(__file__).resolve().parent / "js"
#: The files of js/ the page serves (sio_stream.cli._web.CLIENT_FILES).
CLIENT_FILES = ("sio-stream.js", "sio-stream.d.ts")


class BuildPyWithClient(build_py):
    """build_py, then the JavaScript client copied into the built package's web/ folder."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # the package runs from the checkout, which serves js/
        target = Path(self.build_lib, "sio_stream", "cli", "web")
        self.mkpath(str(target))
        for name in CLIENT_FILES:
            self.copy_file(str(JS / name), str(target / name))


setup(cmdclass={"build_py": BuildPyWithClient})
