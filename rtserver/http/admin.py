"""Admin API under ``/admin/v1``: app management, guarded by ``server.admin_token``.

With no token configured the whole API answers 403 (disabled). Apps here are the same
rows the ``rtserver apps`` CLI manages.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from quart import Blueprint, Response, request

from rtserver.addresses import validate_address
from rtserver.core import Core
from rtserver.http._app import bearer_token, error_response, get_core, json_response
from rtserver.http._fields import get_chain_id, get_chain_type, get_int
from rtserver.http._json import read_json_object
from rtserver.pools import load_pools
from rtserver.store import apps, pools
from rtserver.usage import usage_for_app

blueprint = Blueprint("admin", __name__, url_prefix="/admin/v1")


def is_admin_request() -> bool:
    """Whether the request carries the configured admin token (``Authorization: Bearer``)."""
    token = get_core().config.server.admin_token
    given = bearer_token()
    return (
        bool(token)
        and bool(given)
        and hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode())
    )


async def require_admin_token() -> Response | None:
    """A ``before_request`` guard: None for an admin request, else the 403/401 answer."""
    if not get_core().config.server.admin_token:
        return error_response(403, "the admin API is disabled: set server.admin_token to enable it")
    if not is_admin_request():
        return error_response(
            401,
            "missing or wrong admin token",
            {"WWW-Authenticate": 'Bearer realm="rtserver-admin"'},
        )
    return None


blueprint.before_request(require_admin_token)


@blueprint.get("/apps")
async def list_apps() -> Response:
    found = await get_core().store.read(apps.list_apps)
    return json_response({"apps": [app.to_json() for app in found]})


@blueprint.post("/apps")
async def create_app() -> Response:
    body = await read_json_object()
    core = get_core()
    allow_private = core.config.webhooks.allow_private_addresses
    name, webhook_url = apps.validate_app_fields(
        body.get("name"), body.get("webhook_url"), allow_private_addresses=allow_private
    )
    created = await core.store.write(
        lambda conn: apps.create_app(
            conn, name, webhook_url, now=core.clock.time(), allow_private_addresses=allow_private
        )
    )
    return json_response(created.to_json(), status=201)


@blueprint.get("/apps/<app_id>")
async def get_app(app_id: str) -> Response:
    app = await get_core().store.read(apps.get_app, app_id)
    return json_response(app.to_json())


@blueprint.post("/apps/<app_id>/revoke")
async def revoke_app(app_id: str) -> Response:
    core = get_core()
    app = await core.store.write(lambda conn: apps.revoke_app(conn, app_id, now=core.clock.time()))
    core.app_revoked(app_id)  # its open connections close now, not at the next poll
    return json_response(app.to_json())


@blueprint.get("/apps/<app_id>/usage")
async def app_usage(app_id: str) -> Response:
    """Requests and pushed messages per UTC day (``?days=``, default 31, newest first)."""
    days = get_int(request.args, "days", required=False, default=31, minimum=1, maximum=366)
    assert days is not None  # it has a default
    core = get_core()
    app = await core.store.read(apps.get_app, app_id)
    usage = await core.store.read(
        lambda conn: usage_for_app(conn, app_id, days, now=core.clock.time())
    )
    return json_response({"app_id": app.app_id, "days": usage})


# -- DEX pools -----------------------------------------------------------------------------


@blueprint.get("/pools")
async def list_pools() -> Response:
    found = await get_core().store.read(pools.list_pools)
    return json_response({"pools": [pool.to_json() for pool in found]})


@blueprint.post("/pools")
async def add_pool() -> Response:
    body = await read_json_object()
    chain_type, chain_id, address = _pool_key(body)
    core = get_core()
    pool = await core.store.write(
        lambda conn: pools.add_pool(conn, chain_type, chain_id, address, now=core.clock.time())
    )
    await _reload_pool_index(core)
    return json_response(pool.to_json(), status=201)


@blueprint.post("/pools/<chain_type>/<chain_id>/<address>/enable")
async def enable_pool(chain_type: str, chain_id: str, address: str) -> Response:
    return await _set_pool_enabled(chain_type, chain_id, address, True)


@blueprint.post("/pools/<chain_type>/<chain_id>/<address>/disable")
async def disable_pool(chain_type: str, chain_id: str, address: str) -> Response:
    return await _set_pool_enabled(chain_type, chain_id, address, False)


@blueprint.delete("/pools/<chain_type>/<chain_id>/<address>")
async def remove_pool(chain_type: str, chain_id: str, address: str) -> Response:
    chain, number, pool = _pool_key(
        {"chain_type": chain_type, "chain_id": chain_id, "address": address}
    )
    core = get_core()
    await core.store.write(lambda conn: pools.remove_pool(conn, chain, number, pool))
    await _reload_pool_index(core)
    return json_response({"removed": True})


async def _set_pool_enabled(chain_type: str, chain_id: str, address: str, on: bool) -> Response:
    chain, number, key = _pool_key(
        {"chain_type": chain_type, "chain_id": chain_id, "address": address}
    )
    core = get_core()
    pool = await core.store.write(lambda conn: pools.set_enabled(conn, chain, number, key, on))
    await _reload_pool_index(core)
    return json_response(pool.to_json())


def _pool_key(fields: Mapping[str, Any]) -> tuple[str, int, str]:
    """A pool's ``(chain_type, chain_id, address)`` from a body or the path, read as every
    API reads them (``evm`` + chain id: the configured EVM chain of that id)."""
    chain_id = get_chain_id(fields)
    chain_type = get_chain_type(fields, chain_id=chain_id, chains=get_core().config.chains)
    assert chain_type is not None and chain_id is not None
    return chain_type, chain_id, validate_address(chain_type, fields.get("address"))


async def _reload_pool_index(core: Core) -> None:
    enabled = await core.store.read(lambda conn: pools.list_pools(conn, enabled_only=True))
    load_pools(core.watched, enabled)
