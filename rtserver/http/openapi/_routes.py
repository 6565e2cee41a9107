"""``GET /openapi.json`` and the reference page ``GET /docs/api`` with its two files.

No authentication: the document describes the API, it reveals no data. The page and
its files ship in the package (``static/``) and load nothing from elsewhere.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

from quart import Blueprint, Response

from rtserver.http.openapi._document import openapi_document

blueprint = Blueprint("openapi", __name__)

#: The page's files: name → content type.
_STATIC = {
    "reference.html": "text/html; charset=utf-8",
    "reference.js": "text/javascript; charset=utf-8",
    "reference.css": "text/css; charset=utf-8",
}


@functools.cache
def _document_json() -> str:
    return json.dumps(openapi_document(), ensure_ascii=False, separators=(",", ":"))


@functools.cache
def _static(name: str) -> str:
    return (
        resources.files("rtserver.http.openapi")
        .joinpath("static", name)
        .read_text(encoding="utf-8")
    )


def _file(name: str) -> Response:
    return Response(_static(name), content_type=_STATIC[name])


@blueprint.get("/openapi.json")
async def document() -> Response:
    # Serialised once: the document does not change while the process runs.
    return Response(_document_json(), content_type="application/json")


@blueprint.get("/docs/api")
async def reference_page() -> Response:
    return _file("reference.html")


@blueprint.get("/docs/api/reference.js")
async def reference_script() -> Response:
    return _file("reference.js")


@blueprint.get("/docs/api/reference.css")
async def reference_style() -> Response:
    return _file("reference.css")
