"""The Quart-Trio application: routing, request ids, metrics, JSON errors.

Protocol front-ends and the admin API are blueprints handed to :func:`create_app`; this
module owns only what every route shares.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import trio
from quart import Blueprint, Response, current_app, g, has_websocket_context, request, websocket
from quart.typing import ResponseTypes
from quart.wrappers import BaseRequestWebsocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException
from werkzeug.routing import WebsocketMismatch

from rtserver.core import Core
from rtserver.exceptions import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    LimitExceededError,
    NotFoundError,
)
from rtserver.http._errors import ErrorShape, ErrorShapes
from rtserver.logs import fields, log_context

log = logging.getLogger("rtserver.http")


def create_app(
    core: Core,
    blueprints: Iterable[Blueprint],
    error_shapes: Iterable[tuple[str, ErrorShape]] = (),
) -> QuartTrio:
    # No static folder: Quart's default one would be a ``/static`` route serving only 404s.
    app = QuartTrio("rtserver", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = core.config.server.max_body_bytes
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["rtserver.core"] = core
    shapes = ErrorShapes()
    for prefix, shape in error_shapes:
        shapes.register(prefix, shape)
    app.extensions["rtserver.error_shapes"] = shapes

    # Quart types its ASGI callable with its own event classes; the wrapper speaks plain ASGI.
    app.asgi_app = ReadBodyBeforeReuse(  # type: ignore[method-assign,assignment]
        app.asgi_app,
        limit=core.config.server.max_body_bytes,
        # As long as Quart would wait for a body a route reads.
        timeout=float(app.config["BODY_TIMEOUT"]),
        stopping=core.connections.closing,
    )

    app.before_request(_begin_request)
    app.after_request(_finish_request)
    app.before_websocket(_begin_websocket)
    app.after_websocket(_finish_websocket)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(InvalidInputError, _invalid_input)
    app.register_error_handler(NotFoundError, _not_found)
    app.register_error_handler(AuthenticationError, _unauthenticated)
    app.register_error_handler(ConflictError, _conflict)
    app.register_error_handler(LimitExceededError, _limit_exceeded)
    app.register_error_handler(Exception, _unexpected_error)
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    return app


def get_core() -> Core:
    """The :class:`Core` of the running app (inside a request or WebSocket context)."""
    return current_app.extensions["rtserver.core"]  # type: ignore[no-any-return]


def bearer_token() -> str:
    """The credential of the current request's ``Authorization: Bearer <credential>``
    header (an API key, an admin token, a JWT), stripped; ``""`` when there is none."""
    scheme, _, credential = request.headers.get("Authorization", "").strip().partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else ""


def request_id() -> str:
    return getattr(g, "request_id", "") or ""


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A JSON error in the shape of the API the current path belongs to (inside a request
    or a WebSocket handshake context)."""
    shapes: ErrorShapes = current_app.extensions["rtserver.error_shapes"]
    body = shapes.for_path(_incoming().path)(status, message, request_id())
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
    g.started = get_core().clock.monotonic()
    log_context.set(g.request_id)


async def _begin_websocket() -> None:
    g.request_id = "ws-" + secrets.token_hex(6)
    g.started = get_core().clock.monotonic()
    log_context.set(g.request_id)


async def _finish_request(response: Response) -> Response:
    return _finish(response, "")


async def _finish_websocket(response: ResponseTypes | None) -> ResponseTypes | None:
    # A response here is a refused handshake (an accepted WebSocket returns none): it is
    # an HTTP exchange like any other.
    return None if response is None else _finish(response, " (WebSocket)")


#: Quart's own response or a Werkzeug one (what a refused handshake may carry).
_R = TypeVar("_R", bound=ResponseTypes)


def _finish(response: _R, kind: str) -> _R:
    core = get_core()
    incoming = _incoming()
    rule = incoming.url_rule.rule if incoming.url_rule is not None else "unmatched"
    now = core.clock.monotonic()
    elapsed = now - getattr(g, "started", now)
    core.metrics.http_requests.labels(rule, incoming.method, str(response.status_code)).inc()
    core.metrics.http_duration.labels(rule).observe(elapsed)
    response.headers["X-Request-Id"] = request_id()
    log.info(
        "%s %s%s -> %d (%.1f ms)",
        incoming.method,
        incoming.path,
        kind,
        response.status_code,
        elapsed * 1000,
        extra=fields(
            method=incoming.method,
            path=incoming.path,
            route=rule,
            status=response.status_code,
            duration_ms=round(elapsed * 1000, 1),
        ),
    )
    return response


def _incoming() -> BaseRequestWebsocket:
    """The HTTP request or the WebSocket handshake being handled: Quart runs an upgrade
    request (even one for a path without a WebSocket route) in a WebSocket context, where
    ``request`` is unbound."""
    if has_websocket_context():
        return websocket._get_current_object()  # type: ignore[attr-defined,no-any-return]
    return request._get_current_object()  # type: ignore[attr-defined,no-any-return]


async def _http_error(error: HTTPException) -> Response:
    incoming = _incoming()
    upgrade = has_websocket_context()
    status = error.code or 500
    if status == 404:
        if upgrade:
            message = f"no WebSocket route for {incoming.path}"
        else:
            message = f"no route for {incoming.method} {incoming.path}"
    elif status == 405:
        message = f"method {incoming.method} is not allowed on {incoming.path}"
    elif isinstance(error, WebsocketMismatch):
        if upgrade:
            message = f"{incoming.path} does not accept WebSocket upgrades"
        else:
            message = f"{incoming.path} accepts only WebSocket upgrades"
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


async def _conflict(error: ConflictError) -> Response:
    return error_response(409, str(error))


async def _limit_exceeded(error: LimitExceededError) -> Response:
    return error_response(429, str(error))


async def _unexpected_error(error: Exception) -> Response:
    incoming = _incoming()
    log.error("unhandled error in %s %s", incoming.method, incoming.path, exc_info=error)
    return error_response(500, "internal server error")


# -- request bodies nobody read ------------------------------------------------------------

_Message = dict[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_AsgiApp = Callable[..., Awaitable[None]]


class ReadBodyBeforeReuse:
    """ASGI wrapper: an HTTP response ends only once its request's body is in, unless it
    says ``Connection: close``.

    HTTP/1.1 reuses a connection only after the whole request body has arrived, but a
    route may answer from the head alone (401, 404, 405, 413) while the client is still
    sending the body; Hypercorn closes the connection if the response ends first. So:

    * a body declared (``Content-Length``) or found (chunked) larger than ``limit`` is
      never read in full: the response says ``Connection: close``, and the connection
      closes after it;
    * otherwise the end of the response waits for the rest of the body (Quart reads and
      drops it) and the connection stays open for the next request. The wait stops when
      ``limit`` bytes were exceeded, after ``timeout`` seconds, or when ``stopping`` is set
      (shutdown); the connection then closes after the response.

    Guarantees: the response is written as soon as the app sends it; only its end waits,
    which a client reading a ``Content-Length`` body does not notice. That wait lasts for
    at most ``limit`` body bytes (Quart keeps no more than that in memory) and ``timeout``
    seconds, and none once the server is stopping. A connection whose request body arrived
    in full within those bounds stays open for the next request; any other closes after
    its response.
    """

    def __init__(self, app: _AsgiApp, *, limit: int, timeout: float, stopping: trio.Event) -> None:
        self._app = app
        self._limit = limit
        self._timeout = timeout
        self._stopping = stopping

    async def __call__(self, scope: dict[str, Any], receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        body = _RequestBody(scope["headers"], self._limit)

        async def receive_counted() -> _Message:
            message = await receive()
            body.observe(message)
            return message

        async def send_after_body(message: _Message) -> None:
            if not body.complete:
                if message["type"] == "http.response.start" and not body.within_limit:
                    message = {**message, "headers": [*message.get("headers", ()), _CLOSE]}
                elif (
                    message["type"] == "http.response.body"
                    and not message.get("more_body")
                    and body.within_limit
                ):
                    await self._wait_for(body)
            await send(message)

        await self._app(scope, receive_counted, send_after_body)

    async def _wait_for(self, body: _RequestBody) -> None:
        """Until the body is in, or past a bound (see class doc). Quart's own task receives
        the body meanwhile: it runs until the response has been sent."""
        with trio.move_on_after(self._timeout):
            async with trio.open_nursery() as nursery:
                for event in (body.settled, self._stopping):
                    nursery.start_soon(_cancel_when_set, event, nursery.cancel_scope)


_CLOSE = (b"connection", b"close")


async def _cancel_when_set(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


class _RequestBody:
    """How much of one request's body has arrived (as the app receives it)."""

    def __init__(self, headers: Iterable[tuple[bytes, bytes]], limit: int) -> None:
        self._limit = limit
        self.received = 0
        #: Set once waiting for more of the body is pointless: all in, too much, or gone.
        self.settled = trio.Event()
        chunked = False
        length = 0
        for name, value in headers:
            name = name.lower()
            if name == b"transfer-encoding":
                chunked = True
            elif name == b"content-length":
                # h11 accepted the head, so this is digits; a length that is not cannot be
                # read up to, like one over the limit.
                length = int(value) if value.strip().isdigit() else limit + 1
        #: The declared length; None for a chunked body, known only as it arrives.
        self._length: int | None = None if chunked else length
        self.complete = self._length == 0
        if self.complete:
            self.settled.set()

    @property
    def within_limit(self) -> bool:
        """Whether the whole body may be read: not declared or found over the limit."""
        declared = self._length is None or self._length <= self._limit
        return declared and self.received <= self._limit

    def observe(self, message: _Message) -> None:
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if not message.get("more_body"):
                self.complete = True
                self.settled.set()
            elif self.received > self._limit:
                self.settled.set()
        elif message["type"] == "http.disconnect":
            self.settled.set()
