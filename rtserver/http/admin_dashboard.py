"""The dashboard's data, under the admin token: ``GET /admin/v1/dashboard`` (one
snapshot) and ``GET /admin/v1/dashboard/stream`` (server-sent events: a snapshot now,
then one every ``dashboard.interval`` seconds).

The stream is a plain HTTP response so that the admin guard applies as to every admin
endpoint (``Authorization: Bearer``); the page reads it with ``fetch`` streaming, since
``EventSource`` cannot send that header. The data itself comes from
:class:`rtserver.dashboard.Dashboard`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from quart import Blueprint, Response

from rtserver.dashboard import Dashboard, Snapshot
from rtserver.http._app import get_core, json_response
from rtserver.http.admin import require_admin_token

blueprint = Blueprint("admin_dashboard", __name__, url_prefix="/admin/v1/dashboard")
blueprint.before_request(require_admin_token)


def _dashboard() -> Dashboard:
    dashboard = Dashboard.of(get_core())
    assert dashboard is not None, "the ops component builds the dashboard"
    return dashboard


@blueprint.get("")
async def snapshot() -> Response:
    return json_response(await _dashboard().snapshot())


@blueprint.get("/stream")
async def stream() -> Response:
    dashboard = _dashboard()
    dashboard.check_room()  # LimitExceededError: 429 before the stream starts

    async def events() -> AsyncIterator[bytes]:
        # The viewer is counted from the first byte to the last: a client that went
        # before the stream started holds no place. It is counted only once its first
        # snapshot is taken, so every later one is newer.
        first = await dashboard.snapshot()
        with dashboard.watch() as updates:
            yield _event(first)
            async for update in updates:
                yield _event(update)

    response = Response(events(), content_type="text/event-stream; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"
    response.timeout = None  # it lasts as long as the page is open
    return response


def _event(snapshot: Snapshot) -> bytes:
    return f"event: snapshot\ndata: {json.dumps(snapshot, separators=(',', ':'))}\n\n".encode()
