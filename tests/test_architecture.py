"""The package's layers, read from the source: no import cycle, a sans-IO core, and each folder
importing only the layers below it.

Every ``import`` and ``from ... import`` counts, including those under ``if TYPE_CHECKING:`` and
inside functions: a lower layer that names an upper one, even for types only, is the coupling
these tests exist to catch (define the small Protocol the lower layer needs, in it).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sio_stream"

#: What each part of the package may import of sio_stream, lowest first. A module belongs to the
#: longest prefix listed. ``sio_stream`` itself (``__init__``) and ``__main__`` may import anything.
LAYERS: dict[str, tuple[str, ...]] = {
    "sio_stream._errors": (),
    # A process setting (glibc's malloc thresholds) the CLI applies and an application may.
    "sio_stream._malloc": (),
    "sio_stream.core": ("sio_stream.core", "sio_stream._errors"),
    "sio_stream.glue": ("sio_stream.glue", "sio_stream.core", "sio_stream._errors"),
    "sio_stream.aio": ("sio_stream.aio", "sio_stream.glue", "sio_stream.core", "sio_stream._errors"),
    # The file pieces both drivers share import no driver, so the sync driver can use them.
    "sio_stream.files._common": ("sio_stream._errors",),
    "sio_stream.files._writeout": (),
    "sio_stream.sync": (
        "sio_stream.sync",
        "sio_stream.files._common",
        "sio_stream.files._writeout",
        "sio_stream.glue",
        "sio_stream.core",
        "sio_stream._errors",
    ),
    "sio_stream.files": ("sio_stream.files", "sio_stream.aio", "sio_stream.core", "sio_stream._errors"),
    "sio_stream.cluster": ("sio_stream.cluster", "sio_stream.aio", "sio_stream.core", "sio_stream._errors"),
    "sio_stream.cli": (
        "sio_stream.cli",
        "sio_stream.files",
        "sio_stream.aio",
        "sio_stream.core",
        "sio_stream._malloc",
        "sio_stream._errors",
    ),
}

#: Libraries that do I/O or concurrency: the core imports none of them (nor any non-stdlib one).
#: Libraries outside the standard library that the core may use: pure functions of their input,
#: no I/O (the blake3 hash, like hashlib's).
PURE_LIBRARIES = {"blake3"}
IO_LIBRARIES = {
    "asyncio",
    "threading",
    "concurrent",
    "multiprocessing",
    "subprocess",
    "selectors",
    "socket",
    "ssl",
    "queue",
    "contextvars",
    "socketio",
    "engineio",
    "aiohttp",
    "anyio",
    "aiofiles",
    "redis",
    "eventlet",
    "gevent",
}


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


MODULES = _modules()


def _imports(name: str) -> Iterator[tuple[str, int]]:
    """Every module ``name`` imports (absolute names, sio_stream's resolved to a module of it
    when the import names one), with the line."""
    path, is_package = MODULES[name]
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                yield (submodule if submodule in MODULES else module), node.lineno


def _graph() -> dict[str, set[str]]:
    return {
        name: {imported for imported, _ in _imports(name) if imported in MODULES and imported != name}
        for name in MODULES
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _layer(name: str) -> str | None:
    matches = [prefix for prefix in LAYERS if name == prefix or name.startswith(prefix + ".")]
    return max(matches, key=len) if matches else None


def test_the_graph_sees_type_only_and_function_level_imports() -> None:
    graph = _graph()
    assert "sio_stream.aio._socket" in graph["sio_stream.cluster._node"]  # under TYPE_CHECKING
    assert "sio_stream.cli._web" in graph["sio_stream.cli._server"]  # inside a method
    assert "sio_stream.core._wire" in graph["sio_stream.core._core"]  # from . import _wire as wire


def test_no_import_cycle() -> None:
    assert _cycles(_graph()) == []


def test_a_cycle_is_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_every_module_has_a_layer() -> None:
    assert [
        name for name in MODULES if _layer(name) is None and name not in ("sio_stream", "sio_stream.__main__")
    ] == []


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _layer(n) is not None))
def test_a_module_imports_only_the_layers_below_it(name: str) -> None:
    layer = _layer(name)
    assert layer is not None
    allowed = LAYERS[layer]
    wrong = [
        f"line {line}: {imported}"
        for imported, line in _imports(name)
        if imported.startswith("sio_stream")
        and not any(imported == a or imported.startswith(a + ".") for a in allowed)
    ]
    assert wrong == [], f"{name} ({layer}) may import only {allowed}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _layer(n) == "sio_stream.core"))
def test_the_core_imports_no_io_library(name: str) -> None:
    wrong = []
    for imported, line in _imports(name):
        top = imported.partition(".")[0]
        if top == "sio_stream" or top == "__future__" or top in PURE_LIBRARIES:
            continue
        if top in IO_LIBRARIES or top not in sys.stdlib_module_names:
            wrong.append(f"line {line}: {imported}")
    assert wrong == []


def test_the_error_root_imports_only_anyio() -> None:
    # Its exceptions are anyio's resource errors by contract; the core imports it for them.
    outside = {imported.partition(".")[0] for imported, _ in _imports("sio_stream._errors")}
    assert outside <= {"__future__", "anyio"}
