"""Every Python code block of the README runs, in order, against a real server and client.

The docs pages' blocks run the same way (``tests/docblocks.py``, ``tests/test_docs.py``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp import web

from tests.docblocks import python_blocks as blocks_of
from tests.docblocks import run_blocks
from tests.support import unretrieved_exceptions

pytestmark = pytest.mark.anyio

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return blocks_of(README)


def test_the_readme_has_code_to_run():
    assert len(python_blocks()) >= 3


def test_the_readme_is_a_landing_page():
    # Detail belongs in docs/; the README keeps the pitch, the two-command quick start, the
    # first program and the links (issue 25: it had grown to 187 lines).
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    assert "make demo" in text and "make test" in text


async def test_readme_blocks_run_in_order(tmp_path, capsys):
    namespace: dict = {"__name__": "readme"}
    with unretrieved_exceptions() as reports:
        await _run_readme(namespace, tmp_path, capsys)
        namespace.clear()  # its tasks are freed, so one whose failure nobody awaited reports
    assert reports == [], [r["message"] for r in reports]


async def _run_readme(namespace: dict, tmp_path, capsys) -> None:
    runner = None
    try:
        for index, block in enumerate(python_blocks()):
            await run_blocks([block], f"README block {index + 1}:", namespace)
            if index == 0:
                # The server block builds `app`; serve it on loopback as web.run_app would.
                runner = web.AppRunner(namespace["app"])
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                port = site._server.sockets[0].getsockname()[1]
            if index == 1:
                path = tmp_path / "hello.bin"
                path.write_bytes(b"h" * 300_000)
                reply = await namespace["upload_file"](f"http://127.0.0.1:{port}", str(path))
                assert reply == {"name": str(path), "size": 300_000}
        out = capsys.readouterr().out
        assert re.match(r"[0-9a-f-]{36} \{\}", out), out
    finally:
        client = namespace.get("client")
        if client is not None and client.connected:
            await client.disconnect()
        if runner is not None:
            await namespace["sio"].shutdown()
            await runner.cleanup()


def test_the_readme_documents_every_command_and_option():
    # The CLI section is checked against the parser, so it cannot drift from `--help`.
    import argparse

    from sio_stream.cli._main import _parser

    match = re.search(r"\n## Command line\n(.*?)\n## ", README.read_text(), flags=re.S)
    assert match, "the README has no '## Command line' section"
    section = match.group(1)
    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in commands.choices.items():
        assert f"sio-stream {name}" in section, name
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert option in section, f"{name} {option}"
