"""The documentation site: every python block of every page runs (one ordered run per page, in a
fresh namespace and an empty working directory), the reference covers the whole public API, the
CLI guide matches the parser, and the site builds with warnings as errors."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import socketio
from aiohttp import web

import sio_stream
from tests.docblocks import fences, python_blocks, run_blocks
from tests.support import unretrieved_exceptions

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
RUNNABLE = [page for page in PAGES if python_blocks(page)]


def page_id(page: Path) -> str:
    return page.relative_to(DOCS).as_posix()


def test_the_docs_have_code_to_run():
    assert len(RUNNABLE) >= 8, [page_id(p) for p in RUNNABLE]


@pytest.mark.parametrize(
    "page", [*PAGES, ROOT / "README.md"], ids=lambda p: p.name if p.parent == ROOT else page_id(p)
)
def test_python_code_is_tagged_python(page: Path):
    # A block tagged `py` or `python3` would escape the run below without anyone noticing.
    for language, code in fences(page.read_text()):
        assert language not in ("py", "python3", "pycon", "ipython", "py3"), code[:80]


async def _clean_up(namespace: dict[str, Any]) -> None:
    """What a page left running: connected clients, then servers (a page need not tidy up, as
    a reader's REPL session need not)."""
    values = list(namespace.values())
    for value in values:
        if isinstance(value, socketio.AsyncClient) and value.connected:
            await value.disconnect()
    for value in values:
        if isinstance(value, web.AppRunner):
            await value.cleanup()


@pytest.mark.anyio
@pytest.mark.parametrize("page", RUNNABLE, ids=page_id)
async def test_page_blocks_run_in_order(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "docs"}
    # A task whose failure nobody awaits is reported when it is freed: drop the page's names
    # (its tasks among them) before the check collects garbage.
    with unretrieved_exceptions() as reports:
        try:
            await run_blocks(python_blocks(page), page_id(page), namespace)
        finally:
            await _clean_up(namespace)
            namespace.clear()
    assert reports == [], [r["message"] for r in reports]


def test_the_reference_documents_every_public_name():
    reference = "\n".join(p.read_text() for p in (DOCS / "reference").glob("*.md"))
    documented = set(re.findall(r"^::: sio_stream\.(\w+)$", reference, flags=re.M))
    assert set(sio_stream.__all__) - documented == set()


def test_the_cli_guide_documents_every_command_and_option():
    from sio_stream.cli._main import _parser

    page = (DOCS / "guides" / "cli.md").read_text()
    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in commands.choices.items():
        assert f"sio-stream {name}" in page, name
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert option in page, f"{name} {option}"


def test_the_error_table_lists_every_error():
    table = (DOCS / "reference" / "errors.md").read_text()
    errors = [n for n in sio_stream.__all__ if isinstance(getattr(sio_stream, n), type)]
    errors = [n for n in errors if issubclass(getattr(sio_stream, n), sio_stream.StreamError)]
    for name in errors:
        assert f"| `{name}` |" in table, name


@pytest.mark.docs_build
@pytest.mark.timeout(120)
def test_the_site_builds_with_warnings_as_errors(tmp_path: Path):
    # `make docs` and CI build it too; this catches a broken build (a dangling link or anchor, a
    # renamed public name, a docstring that no longer parses) within `make test`.
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--quiet",
            "--site-dir",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=110,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").exists()
    # Opened from file:// (no server), a link to a directory shows a folder listing: every
    # link between pages must name a file (use_directory_urls: false). 404.html is served only.
    site = tmp_path / "site"
    broken = []
    for page in site.rglob("*.html"):
        if page.name == "404.html":
            continue
        for ref in re.findall(r'(?:href|src)="([^"#]+)', page.read_text()):
            if re.match(r"[a-z]+:", ref):
                continue  # https:, data:, mailto:
            if not (page.parent / urllib.parse.unquote(urllib.parse.urlsplit(ref).path)).is_file():
                broken.append(f"{page.relative_to(site)}: {ref}")
    assert broken == []


def test_the_home_page_leads_to_every_guide():
    home = (DOCS / "index.md").read_text()
    start = home.split("## Where to start", 1)[1].split("\n## ", 1)[0]
    for guide in sorted((DOCS / "guides").glob("*.md")):
        assert f"(guides/{guide.name})" in start, guide.name
