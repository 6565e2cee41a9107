"""Admin API under ``/admin/v1``: app management, guarded by ``server.admin_token``.

With no token configured the whole API answers 403 (disabled). Apps here are the same
rows the ``rtserver apps`` CLI manages.
"""

from __future__ import annotations

import hmac

from quart import Blueprint, Response, request

from rtserver.http._app import error_response, get_core, json_response
from rtserver.http._json import read_json_object
from rtserver.store import apps

blueprint = Blueprint("admin", __name__, url_prefix="/admin/v1")


@blueprint.before_request
async def _require_admin_token() -> Response | None:
    token = get_core().config.server.admin_token
    if not token:
        return error_response(403, "the admin API is disabled: set server.admin_token to enable it")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode("utf-8", "surrogatepass"), token.encode()
    ):
        return error_response(
            401,
            "missing or wrong admin token",
            {"WWW-Authenticate": 'Bearer realm="rtserver-admin"'},
        )
    return None


@blueprint.get("/apps")
async def list_apps() -> Response:
    found = await get_core().store.read(apps.list_apps)
    return json_response({"apps": [app.to_json() for app in found]})


@blueprint.post("/apps")
async def create_app() -> Response:
    body = await read_json_object()
    name, webhook_url = apps.validate_app_fields(body.get("name"), body.get("webhook_url"))
    created = await get_core().store.write(lambda conn: apps.create_app(conn, name, webhook_url))
    return json_response(created.to_json(), status=201)


@blueprint.get("/apps/<app_id>")
async def get_app(app_id: str) -> Response:
    app = await get_core().store.read(apps.get_app, app_id)
    return json_response(app.to_json())


@blueprint.post("/apps/<app_id>/revoke")
async def revoke_app(app_id: str) -> Response:
    core = get_core()
    app = await core.store.write(lambda conn: apps.revoke_app(conn, app_id))
    core.watched.remove_app(app_id)
    return json_response(app.to_json())
