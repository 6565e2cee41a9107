"""``X-API-Key`` authentication: the key identifies the app (business identity)."""

from __future__ import annotations

from quart import request, websocket

from rtserver.exceptions import AuthenticationError
from rtserver.http import authenticate_key, get_core
from rtserver.store.apps import App
from rtserver.usage import REQUESTS

API_KEY_HEADER = "X-API-Key"
#: Browsers cannot set headers on a WebSocket handshake; this query parameter is the
#: documented extension that carries the key instead (WebSocket endpoints only).
API_KEY_QUERY = "api_key"


async def authenticate_request() -> App:
    """The app of the current HTTP request's ``X-API-Key``; counts the request.

    Raises :class:`AuthenticationError` (401) when the key is missing, unknown or revoked.
    """
    key = request.headers.get(API_KEY_HEADER, "").strip()
    if not key:
        raise AuthenticationError("X-API-Key header is required")
    core = get_core()
    app = await authenticate_key(core, key)
    core.usage.count(app.app_id, REQUESTS)
    return app


def websocket_api_key() -> str:
    """The key of the current WebSocket handshake (header first, then ``api_key``); may be ''."""
    key = websocket.headers.get(API_KEY_HEADER, "").strip()
    return key or websocket.args.get(API_KEY_QUERY, "").strip()


__all__ = [
    "API_KEY_HEADER",
    "API_KEY_QUERY",
    "authenticate_key",
    "authenticate_request",
    "websocket_api_key",
]
