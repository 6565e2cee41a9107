"""The HTTP/WebSocket front: the listener, the Quart-Trio app, WebSocket routes served
directly, and the endpoints every server has."""

from rtserver.http._app import (
    bearer_token,
    create_app,
    error_response,
    get_core,
    json_response,
    request_id,
)
from rtserver.http._asgi_websocket import AsgiWebSocket
from rtserver.http._errors import ErrorShape, default_shape
from rtserver.http._fields import (
    get_chain_id,
    get_chain_type,
    get_int,
    get_list,
    get_object,
    get_str,
)
from rtserver.http._json import json_type, read_json_object
from rtserver.http._listener import Listener
from rtserver.http._websocket import (
    WebSocketClosed,
    WebSocketConnection,
    WebSocketRequest,
    WebSocketRoute,
)

__all__ = [
    "AsgiWebSocket",
    "ErrorShape",
    "Listener",
    "WebSocketClosed",
    "WebSocketConnection",
    "WebSocketRequest",
    "WebSocketRoute",
    "bearer_token",
    "create_app",
    "default_shape",
    "error_response",
    "get_chain_id",
    "get_chain_type",
    "get_core",
    "get_int",
    "get_list",
    "get_object",
    "get_str",
    "json_response",
    "json_type",
    "read_json_object",
    "request_id",
]
