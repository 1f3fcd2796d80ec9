"""The ``sio-stream`` command: a loopback demo, a small file server, and its client.

The file server (``_server``: :class:`FileServer`, its events and refusals), the client side of
its protocol (``_client``: connect, download, upload), the commands built on both
(``_commands``), the demo (``_demo``) and the argument parser with :func:`main` (``_main``);
``_common`` holds what they share. The web page the server serves is ``sio_stream._web`` and
``sio_stream/web/``.
"""

from ._server import main

__all__ = ["main"]
