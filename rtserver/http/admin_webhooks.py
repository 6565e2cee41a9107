"""Admin API for webhooks under ``/admin/v1/apps/<app_id>/webhook``.

Same guard as :mod:`rtserver.http.admin` (``Authorization: Bearer <server.admin_token>``).
Set or clear an app's endpoint (setting it also re-enables a webhook disabled by a
410), rotate its signing secret (the old one keeps signing for
``webhooks.secret_overlap`` seconds), list dead letters and put them back in the queue.
URLs are validated by :mod:`rtserver.webhook_urls` (400 with the reason), private
addresses refused unless ``webhooks.allow_private_addresses``.
"""

from __future__ import annotations

from quart import Blueprint, Response

from rtserver.delivery import Delivery
from rtserver.http._app import get_core, json_response
from rtserver.http._json import read_json_object
from rtserver.http.admin import require_admin_token
from rtserver.store import webhooks

blueprint = Blueprint("admin_webhooks", __name__, url_prefix="/admin/v1/apps/<app_id>/webhook")
blueprint.before_request(require_admin_token)


def _wake_sender() -> None:
    delivery = Delivery.of(get_core())
    if delivery is not None:
        delivery.webhooks.wake()


@blueprint.get("")
async def get_webhook(app_id: str) -> Response:
    settings = await get_core().store.read(webhooks.get_settings, app_id)
    return json_response(settings.to_json())


@blueprint.put("")
async def set_webhook(app_id: str) -> Response:
    body = await read_json_object()
    allow_private = get_core().config.webhooks.allow_private_addresses
    url = webhooks.validate_url(body.get("url"), allow_private_addresses=allow_private)
    settings = await get_core().store.write(
        lambda conn: webhooks.set_webhook(conn, app_id, url, allow_private_addresses=allow_private)
    )
    _wake_sender()
    return json_response(settings.to_json())


@blueprint.delete("")
async def clear_webhook(app_id: str) -> Response:
    settings = await get_core().store.write(lambda conn: webhooks.set_webhook(conn, app_id, None))
    return json_response(settings.to_json())


@blueprint.post("/rotate-secret")
async def rotate_secret(app_id: str) -> Response:
    core = get_core()
    overlap = core.config.webhooks.secret_overlap
    settings = await core.store.write(
        lambda conn: webhooks.rotate_secret(conn, app_id, overlap, now=core.clock.time())
    )
    return json_response(settings.to_json())


@blueprint.get("/dead-letters")
async def dead_letters(app_id: str) -> Response:
    found = await get_core().store.read(webhooks.dead_letters, app_id)
    return json_response({"app_id": app_id, "dead_letters": found})


@blueprint.post("/dead-letters/retry")
async def retry_all(app_id: str) -> Response:
    core = get_core()
    count = await core.store.write(
        lambda conn: webhooks.retry_dead(conn, app_id, now_ms=core.clock.time_ms())
    )
    _wake_sender()
    return json_response({"app_id": app_id, "requeued": count})


@blueprint.post("/dead-letters/<delivery_id>/retry")
async def retry_one(app_id: str, delivery_id: str) -> Response:
    core = get_core()
    count = await core.store.write(
        lambda conn: webhooks.retry_dead(conn, app_id, delivery_id, now_ms=core.clock.time_ms())
    )
    _wake_sender()
    return json_response({"app_id": app_id, "requeued": count})
