"""The ``sio-stream`` command: a loopback demo, a small file server, and its client.

``sio-stream demo`` measures a real transfer (python-socketio server and client over a
websocket on 127.0.0.1); ``serve``/``ls``/``get``/``put`` share files from one directory.
Every command needs aiohttp (python-socketio's async server and client transport): install
``sio-stream[server]``.

The modules, each importing only those above it: ``_common`` (names, ``CliError``, small
helpers); ``_server`` (``FileServer``, the file server, and its protocol);
``_client`` (connect, download and upload, resumed and verified); ``_commands`` (``serve``,
``ls``, ``get``, ``put`` and the planning of several files); ``_demo``; ``_main`` (the
argument parser and ``main``). Beside them, the server's parts: ``_web`` (the page's HTTP
routes) and ``web/`` (the page and its assets; the JavaScript client comes from ``js/``),
``_access`` (the access log); and the client's: ``_progress`` (the progress bar) and ``_tree``
(the names and targets of several files).
"""

from ._main import main

__all__ = ["main"]
