"""The file server's web page and the HTTP routes around python-socketio's.

``sio-stream serve`` answers ``/`` with a page (``web/index.html``) that lists, uploads and
downloads through the JavaScript client (``sio-stream.js``) and socket.io-client's browser bundle
(``web/socket.io.esm.min.js``, vendored from the npm package pinned in ``js/package-lock.json``):
the page works with no internet access.

The client's one source is ``js/sio-stream.js`` (the npm package): a wheel's build copies it
into ``web/`` (``setup.py``), a checkout serves it from ``js/`` (:func:`asset_file`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web

WEB_DIR = Path(__file__).resolve().parent / "web"
#: The JavaScript client's files: in ``js/`` of a checkout, copied into WEB_DIR by a wheel's build.
CLIENT_FILES = ("sio-stream.js", "sio-stream.d.ts")
_CHECKOUT_JS = Path(__file__).resolve().parents[2] / "js"

#: URL path -> (file in WEB_DIR, see asset_file; content type). Nothing else of the directory is served.
ASSETS: dict[str, tuple[str, str]] = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
    "/sio-stream.js": ("sio-stream.js", "text/javascript; charset=utf-8"),
    "/sio-stream.d.ts": ("sio-stream.d.ts", "text/plain; charset=utf-8"),
    "/socket.io.esm.min.js": ("socket.io.esm.min.js", "text/javascript; charset=utf-8"),
    # The service worker that turns a stream into a browser download; served from the root so
    # that its scope covers the page.
    "/sw.js": ("sw.js", "text/javascript; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}


def asset_file(name: str) -> Path:
    """The file an asset of :data:`ASSETS` is read from: WEB_DIR, or for the JavaScript client in
    a checkout (no copy in WEB_DIR), its source in ``js/``."""
    path = WEB_DIR / name
    if name in CLIENT_FILES and not path.is_file():
        return _CHECKOUT_JS / name
    return path


#: The page talks to its own origin only; no inline script, no third-party anything.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-src 'self'; "
        "worker-src 'self'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def attach_socketio(app: web.Application, sio: Any, path: str = "/socket.io/") -> None:
    """Route ``path`` to python-socketio's ``sio`` (as ``sio.attach(app)`` does). What this
    server needs beyond that, ``ss(sio)`` gives any aiohttp server: long-polling POST bodies
    read whole (``sio_stream/glue/_whole_posts.py``) and websockets uncompressed
    (``sio_stream/glue/_compression.py``)."""

    async def handle(request: web.Request) -> Any:
        return await sio.eio.handle_request(request)

    app.router.add_route("GET", path, handle)
    app.router.add_route("POST", path, handle)
    app.router.add_route("OPTIONS", path, handle)


def add_page(app: web.Application, config: dict[str, Any]) -> None:
    """Serve the page and its assets, and ``/config.json`` (what the page needs to know before
    it connects: whether a token is needed, the upload limit)."""
    body = json.dumps(config).encode()

    async def config_json(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json", headers=_HEADERS)

    def asset(name: str, content_type: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            data = asset_file(name).read_bytes()
            response = web.Response(body=data, headers=_HEADERS)
            response.content_type, _, charset = content_type.partition("; charset=")
            response.charset = charset or None
            return response

        return handler

    app.router.add_get("/config.json", config_json)
    for url, (name, content_type) in ASSETS.items():
        app.router.add_get(url, asset(name, content_type))


def asgi_page(config: dict[str, Any]) -> Any:
    """The page, its assets and ``/config.json`` as an ASGI application (what :func:`add_page`
    serves under aiohttp), for ``socketio.ASGIApp(sio, other_asgi_app=...)``."""
    bodies = {"/config.json": (json.dumps(config).encode(), "application/json")}
    headers = [(k.lower().encode(), v.encode()) for k, v in _HEADERS.items()]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close"})  # websockets belong to /socket.io/ only
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path in ASSETS and scope["method"] in ("GET", "HEAD"):
            name, content_type = ASSETS[path]
            body, kind = asset_file(name).read_bytes(), content_type
        elif path in bodies and scope["method"] in ("GET", "HEAD"):
            body, kind = bodies[path]
        else:
            body, kind = b"not found", "text/plain; charset=utf-8"
            path = ""
        status = 200 if path else 404
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", kind.encode()),
                    (b"content-length", str(len(body)).encode()),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    return app
