"""The Quart-Trio application: routing, request ids, metrics, JSON errors.

Protocol front-ends and the admin API are blueprints handed to :func:`create_app`; this
module owns only what every route shares.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterable
from typing import Any

from quart import Blueprint, Response, current_app, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from rtserver.core import Core
from rtserver.exceptions import AuthenticationError, InvalidInputError, NotFoundError
from rtserver.http._errors import ErrorShape, ErrorShapes
from rtserver.logs import log_context

log = logging.getLogger("rtserver.http")


def create_app(
    core: Core,
    blueprints: Iterable[Blueprint],
    error_shapes: Iterable[tuple[str, ErrorShape]] = (),
) -> QuartTrio:
    app = QuartTrio("rtserver")
    app.config["MAX_CONTENT_LENGTH"] = core.config.server.max_body_bytes
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["rtserver.core"] = core
    shapes = ErrorShapes()
    for prefix, shape in error_shapes:
        shapes.register(prefix, shape)
    app.extensions["rtserver.error_shapes"] = shapes

    app.before_request(_begin_request)
    app.after_request(_finish_request)
    app.before_websocket(_begin_websocket)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(InvalidInputError, _invalid_input)
    app.register_error_handler(NotFoundError, _not_found)
    app.register_error_handler(AuthenticationError, _unauthenticated)
    app.register_error_handler(Exception, _unexpected_error)
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    return app


def get_core() -> Core:
    """The :class:`Core` of the running app (inside a request or WebSocket context)."""
    return current_app.extensions["rtserver.core"]  # type: ignore[no-any-return]


def request_id() -> str:
    return getattr(g, "request_id", "") or ""


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A JSON error in the shape of the API the current path belongs to."""
    shapes: ErrorShapes = current_app.extensions["rtserver.error_shapes"]
    body = shapes.for_path(request.path)(status, message, request_id())
    response = Response(
        json.dumps(body, ensure_ascii=False), status=status, content_type="application/json"
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def json_response(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status=status,
        content_type="application/json",
    )


async def _begin_request() -> None:
    g.request_id = request.headers.get("X-Request-Id", "")[:64] or "r-" + secrets.token_hex(6)
    g.started = time.perf_counter()
    log_context.set(g.request_id)


async def _begin_websocket() -> None:
    g.request_id = "ws-" + secrets.token_hex(6)
    log_context.set(g.request_id)


async def _finish_request(response: Response) -> Response:
    core = get_core()
    rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
    elapsed = time.perf_counter() - getattr(g, "started", time.perf_counter())
    core.metrics.http_requests.labels(rule, request.method, str(response.status_code)).inc()
    core.metrics.http_duration.labels(rule).observe(elapsed)
    response.headers["X-Request-Id"] = request_id()
    log.info(
        "%s %s -> %d (%.1f ms)", request.method, request.path, response.status_code, elapsed * 1000
    )
    return response


async def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if status == 404:
        message = f"no route for {request.method} {request.path}"
    elif status == 405:
        message = f"method {request.method} is not allowed on {request.path}"
    elif status == 413:
        limit = get_core().config.server.max_body_bytes
        message = f"request body is larger than the limit of {limit} bytes"
    else:
        message = error.description or error.name
    headers = {}
    if status == 405 and error.get_response().headers.get("Allow"):
        headers["Allow"] = error.get_response().headers["Allow"]
    return error_response(status, message, headers)


async def _invalid_input(error: InvalidInputError) -> Response:
    return error_response(400, str(error))


async def _not_found(error: NotFoundError) -> Response:
    return error_response(404, str(error))


async def _unauthenticated(error: AuthenticationError) -> Response:
    return error_response(401, str(error))


async def _unexpected_error(error: Exception) -> Response:
    log.error("unhandled error in %s %s", request.method, request.path, exc_info=error)
    return error_response(500, "internal server error")
