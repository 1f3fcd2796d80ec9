"""Packaging: a warning-free build (SPDX license string), one version, a changelog that has it."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import sio_stream

ROOT = Path(__file__).resolve().parent.parent


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_an_spdx_string_with_a_setuptools_that_knows_it():
    # The TOML-table form makes setuptools print a deprecation warning on every install.
    config = pyproject()
    assert config["project"]["license"] == "MIT"
    assert "setuptools>=77" in config["build-system"]["requires"]


def test_the_version_has_one_source():
    config = pyproject()
    assert "version" not in config["project"]
    assert config["project"]["dynamic"] == ["version"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "sio_stream.__version__"}
    # The installed metadata (make installs the package in editable mode) agrees.
    assert version("sio-stream") == sio_stream.__version__


def test_the_changelog_has_this_version_and_an_unreleased_section():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## (.+)$", changelog, flags=re.M)
    assert headings[0] == "Unreleased"
    assert any(h.startswith(f"{sio_stream.__version__} ") or h == sio_stream.__version__ for h in headings)
