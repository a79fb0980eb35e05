"""The web app's files (issue 11), from WEB_DIST_DIR (`make up` builds web/ into web/dist).

Any path that is not under /api/, /metrics or /healthz: an existing file under the directory as it is
(under /assets/, whose names carry a content hash, cacheable for a year), anything else `index.html`
(client-side routes: /insights/trends, /persons/x, ...) with `Cache-Control: no-cache`. A missing
/assets/ file is a 404, not the page. Nothing outside the directory is ever served. Without a built app
the page is a 503 saying so.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from workers.query.http import SETTINGS_KEY

NOT_OURS = ("/api/", "/metrics", "/healthz")
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
NOT_BUILT = """<!doctype html>
<html><head><meta charset="utf-8"><title>user-analytics</title></head>
<body><h1>The web app is not built</h1>
<p>Run <code>make up</code> (it builds <code>web/</code> with npm) and reload this page.</p></body></html>
"""


def _under(root: Path, path: str) -> Path | None:
    """What the URL path names under root, None when it would be outside it."""
    if "\x00" in path:
        return None
    candidate = (root / path.lstrip("/")).resolve()
    return candidate if candidate.is_relative_to(root) else None


def _answer(dist_dir: str, path: str) -> web.StreamResponse:
    root = Path(dist_dir).resolve()
    found = _under(root, path)
    if found is None:
        raise web.HTTPNotFound()  # ../ (encoded or not) out of the directory
    if found.is_file():
        return web.FileResponse(found, headers=IMMUTABLE if path.startswith("/assets/") else None)
    if path.startswith("/assets/"):
        raise web.HTTPNotFound()
    index = root / "index.html"
    if not index.is_file():
        return web.Response(status=503, text=NOT_BUILT, content_type="text/html")
    return web.FileResponse(index, headers={"Cache-Control": "no-cache"})


async def web_app(request: web.Request) -> web.StreamResponse:
    path = request.path  # decoded: %2e%2e is .. here, and is resolved like any other
    if path == "/api" or path.startswith(NOT_OURS):
        raise web.HTTPNotFound()
    if request.method not in ("GET", "HEAD"):
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
    return _answer(request.app[SETTINGS_KEY].web_dist_dir, path)


def add_routes(app: web.Application) -> None:
    app.router.add_route("*", "/{tail:.*}", web_app)
