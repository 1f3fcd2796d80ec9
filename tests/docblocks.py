"""Code blocks of Markdown pages, run as a reader would paste them into ``python -m asyncio``.

A page's ``python`` blocks run in order in one namespace, with top-level ``await``; blocks of any
other language (shell commands, JavaScript, output) are not run. Fences may be indented (inside
an admonition or a list item): the indentation is removed before running.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", flags=re.S | re.M
)


def fences(text: str) -> list[tuple[str, str]]:
    """Every fenced block of ``text`` as ``(language, code)``, the code dedented."""
    found = []
    for match in FENCE.finditer(text):
        indent = match.group("indent")
        lines = match.group("body").splitlines(keepends=True)
        code = "".join(line[len(indent) :] if line.startswith(indent) else line for line in lines)
        words = match.group("info").split()
        found.append((words[0] if words else "", code))
    return found


def python_blocks(path: Path) -> list[str]:
    return [code for language, code in fences(path.read_text()) if language == "python"]


async def run_blocks(blocks: list[str], label: str, namespace: dict[str, Any]) -> None:
    """Run ``blocks`` in order in ``namespace``; ``label`` names them in tracebacks."""
    for index, block in enumerate(blocks):
        code = compile(block, f"{label} block {index + 1}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)
        if inspect.isawaitable(result):
            await result
