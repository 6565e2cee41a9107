"""The channel protocol's HTTP side, in the document's JSON shape.

* ``POST /api/v1/ws/publish``: the app's backend publishes an event (API key as
  ``Authorization: Bearer``, or the admin token with ``app_id`` in the body);
* ``GET /api/v1/ws/connected-users``: the app's connected user ids (API key);
* ``GET /api/v1/ws/connections``: every open channel socket in detail (admin token: the
  document warns it is unprotected upstream, so here it is not);
* ``POST/DELETE /admin/v1/apps/<app_id>/users/<user_id>/tokens``: issue an access token,
  revoke the user's tokens (with a forced logout).
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, request

from rtserver.core import Core
from rtserver.delivery import Delivery
from rtserver.exceptions import AuthenticationError, InvalidInputError
from rtserver.http import bearer_token, get_core, json_response, read_json_object, request_id
from rtserver.http.admin import is_admin_request, require_admin_token
from rtserver.protocols.channels._channels import Channels
from rtserver.protocols.channels._wire import PREFIX, success_body
from rtserver.store import users
from rtserver.store.users import UserRef, validate_user_id


async def _app_of_request(body: dict[str, Any] | None = None) -> str:
    """The app a request acts for: its API key's, or (admin token) the body's ``app_id``."""
    if is_admin_request():
        app_id = body.get("app_id") if body is not None else request.args.get("app_id")
        if not isinstance(app_id, str) or not app_id:
            raise InvalidInputError("app_id: required with the admin token")
        return app_id
    key = bearer_token()
    if not key:
        raise AuthenticationError("Authorization: Bearer <API key> is required")
    app = await get_core().authenticate_app(key)
    return app.app_id


def _ok(message: str, data: Any, status: int = 200) -> Response:
    body = success_body(message, data, request_id())
    body["status_code"] = status
    return json_response(body, status=status)


def make_blueprints(core: Core, delivery: Delivery, channels: Channels) -> tuple[Blueprint, ...]:
    api = Blueprint("channels", __name__, url_prefix=PREFIX)
    admin = Blueprint("channels-admin", __name__, url_prefix="/admin/v1")
    admin.before_request(require_admin_token)

    @api.post("/publish")
    async def publish() -> Response:
        body = await read_json_object()
        app_id = await _app_of_request(body)
        channel, event = body.get("channel"), body.get("event")
        if not isinstance(channel, str):
            raise InvalidInputError("channel: a channel name")
        if "data" not in body:
            raise InvalidInputError("data: the event's payload (any JSON value)")
        user_ids = _user_ids(body)
        published = await channels.publish(app_id, channel, event, body["data"], user_ids)  # type: ignore[arg-type]
        return _ok("published", {"channel": channel, "published": [p.to_json() for p in published]})

    @api.get("/connected-users")
    async def connected_users() -> Response:
        app_id = await _app_of_request()
        prefix = app_id + ":"
        ids = sorted(
            key.removeprefix(prefix) for key in delivery.hub.user_keys() if key.startswith(prefix)
        )
        return _ok("ok", {"user_ids": ids, "count": len(ids)})

    @api.get("/connections")
    async def connections() -> Response:
        if not is_admin_request():
            raise AuthenticationError("the admin token is required")
        found = []
        for info in core.connections.for_endpoint("channels"):
            session = delivery.hub.session(info.conn_id)
            if session is None or session.user_id is None:
                continue
            app_id, _, user_id = session.user_id.partition(":")
            found.append(
                {
                    "connection_id": info.conn_id,
                    "app_id": app_id,
                    "user_id": user_id,
                    "connected_at": int(info.connected_at),
                    "channels": sorted(channels.channel_of(topic) for topic in session.topics),
                }
            )
        return _ok("ok", {"connections": found, "count": len(found)})

    @admin.post("/apps/<app_id>/users/<user_id>/tokens")
    async def issue_token(app_id: str, user_id: str) -> Response:
        user_id = validate_user_id(user_id)
        ttl = channels.config.access_token_ttl
        issued = await core.store.write(
            lambda conn: users.issue_token(conn, app_id, user_id, ttl=ttl, now=core.clock.time())
        )
        return json_response(issued.to_json(), status=201)

    @admin.delete("/apps/<app_id>/users/<user_id>/tokens")
    async def revoke_tokens(app_id: str, user_id: str) -> Response:
        user = UserRef(app_id, validate_user_id(user_id))
        revoked = await channels.revoke_tokens(user)
        return json_response({"app_id": app_id, "user_id": user.user_id, "revoked": revoked})

    return api, admin


def _user_ids(body: dict[str, Any]) -> list[str]:
    """``user_id`` (one) or ``user_ids`` (several), validated; [] when neither is given."""
    if "user_id" in body and "user_ids" in body:
        raise InvalidInputError("give user_id or user_ids, not both")
    if "user_id" in body:
        return [validate_user_id(body["user_id"])]
    given = body.get("user_ids", [])
    if not isinstance(given, list):
        raise InvalidInputError("user_ids: a list of user ids")
    return [validate_user_id(u) for u in given]
