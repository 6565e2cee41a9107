"""``GET /transaction/ws/status`` and ``POST /transaction/ws/replay`` (spec "HTTP helper APIs").

Replay delivers to the *calling* app only (the app of ``X-API-Key``): the record is
stored idempotently, a pending message is committed with it (or, when the body's ``id``
is a message the app already has, that message is pushed again), pushed to the app's
open connections and queued for its webhook. Other apps watching the same addresses
and connection-scoped subscribers do not receive replays (docs/delivery.md).
"""

from __future__ import annotations

import re
import time

from quart import Blueprint, Response

from rtserver.delivery import Delivery
from rtserver.exceptions import InvalidInputError
from rtserver.http import json_response, read_json_object
from rtserver.protocols.address_monitoring._auth import authenticate_request
from rtserver.protocols.address_monitoring._errors import PREFIX
from rtserver.protocols.address_monitoring.ws import ENDPOINT
from rtserver.records import TransactionRecord

_SAFE_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")


def make_blueprint(delivery: Delivery) -> Blueprint:
    blueprint = Blueprint("address_monitoring_ws_status", __name__, url_prefix=PREFIX)

    @blueprint.get("/transaction/ws/status")
    async def status() -> Response:
        app = await authenticate_request()
        open_ = delivery.core.connections.for_app(app.app_id, ENDPOINT)
        pending = await delivery.pending_count(app.app_id)
        now = time.time()
        details = [
            {
                "clientId": c.conn_id,
                "connectedAt": int(c.connected_at * 1000),
                "uptime": int(now - c.connected_at),
                "pendingTxCount": pending,
            }
            for c in open_
        ]
        return json_response(
            {
                "code": 0,
                "message": "ok",
                "data": {
                    "appId": app.app_id,
                    "connectedClients": len(open_),
                    "clients": [c.conn_id for c in open_],
                    "details": details,
                },
            }
        )

    @blueprint.post("/transaction/ws/replay")
    async def replay() -> Response:
        app = await authenticate_request()
        body = await read_json_object()
        data = body.get("data")
        record = TransactionRecord.from_push(data)
        assert isinstance(data, dict)
        listen = data.get("listenAddress") or []
        if not isinstance(listen, list) or not all(isinstance(a, str) for a in listen):
            raise InvalidInputError(
                "data.listenAddress must be an array of strings", field="data.listenAddress"
            )
        message_id = body.get("id")
        if not isinstance(message_id, str) or not _SAFE_ID.fullmatch(message_id):
            # Pushes embed the id in pre-rendered JSON: only plain ids are kept, any
            # other gets a new uuid (the answer's ``messageId`` says which).
            message_id = None
        entry = await delivery.replay(
            app.app_id, record, listen, data.get("is_reorg_resend") is True, message_id
        )
        result = {"processed": True, "txhash": record.tx_hash}
        if entry is not None:
            result["messageId"] = entry.message_id
        return json_response({"code": 0, "message": "ok", "data": result})

    return blueprint
