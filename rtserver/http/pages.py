"""The browser pages the package ships (``rtserver/static/``): the admin dashboard at
``/dashboard`` and the shared assets under ``/assets/``. No CDN, no build step, no
external fonts: every byte a page loads comes from this server.

A page holds no data: the dashboard asks the admin API for it with the token its user
types (``rtserver/http/admin_dashboard.py``).
"""

from __future__ import annotations

from importlib import resources

from quart import Blueprint, Response

from rtserver.http._app import error_response

blueprint = Blueprint("pages", __name__)

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
#: Pages load scripts, styles and connections from this server only.
_CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"


def static_response(name: str) -> Response:
    """A file of ``rtserver/static/`` (a plain name, one of the shipped kinds), or 404."""
    suffix = name[name.rfind(".") :] if "." in name else ""
    folder = resources.files("rtserver").joinpath("static")
    if "/" in name or "\\" in name or name.startswith(".") or suffix not in _CONTENT_TYPES:
        return error_response(404, f"no asset {name!r}")
    asset = folder.joinpath(name)
    if not asset.is_file():
        return error_response(404, f"no asset {name!r}")
    response = Response(asset.read_bytes(), content_type=_CONTENT_TYPES[suffix])
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@blueprint.get("/assets/<name>")
async def asset(name: str) -> Response:
    return static_response(name)


@blueprint.get("/dashboard")
async def dashboard() -> Response:
    return static_response("dashboard.html")
