"""The web dashboard: ``GET /`` serves ``web/index.html``, ``/static/...`` its assets.

The page is plain JavaScript modules plus the vendored lightweight-charts build (see
``web/static/vendor/README.md``): nothing is built, and the page talks to the server only
through the public REST and WebSocket API, as any third-party client would.
"""

import mimetypes
from pathlib import Path

from fastapi import FastAPI
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["WEB_ROOT", "install_dashboard"]

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
"""Where the page lives: package data, installed next to the code."""

# Revalidate on every load (ETag/Last-Modified make that a cheap 304): an upgraded server must
# never run against a stale module cached from the previous version.
_NO_CACHE = {"Cache-Control": "no-cache"}


class _StaticFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(_NO_CACHE)
        return response


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at ``/`` and its assets under ``/static``."""
    # Browsers refuse a module script served with a non-JavaScript type, and Python's
    # built-in table only knows ``.mjs`` through the system's mime.types on some platforms.
    mimetypes.add_type("text/javascript", ".mjs")
    mimetypes.add_type("text/javascript", ".js")
    index = WEB_ROOT / "index.html"

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(index, media_type="text/html", headers=_NO_CACHE)

    app.mount("/static", _StaticFiles(directory=WEB_ROOT / "static"), name="static")
