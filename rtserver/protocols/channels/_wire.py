"""The channel protocol's wire: envelopes, client messages, errors, close codes.

Server events are ``{"event", "channel", "data"}`` as the document shows. Extensions a
client written from the document can ignore (docs/channels.md): every event of a channel
also carries ``offset`` and ``epoch`` (its place in the channel's history, for catch-up),
and the server answers commands with ``subscribed``, ``unsubscribed``, ``pong`` and
``error`` events in the same envelope.
"""

from __future__ import annotations

import json
from typing import Any

from rtserver.store.streams import StreamPosition

#: The wire format's name among a stream message's frames.
FORMAT = "channels"

#: The endpoint and the prefix of the protocol's HTTP API (its error shape).
WS_PATH = "/api/v1/ws"
PREFIX = "/api/v1/ws"

#: A newer connection of the same user replaced this one (one socket per user).
CLOSE_REPLACED = 4000
#: The user was logged out (``mobile.force.logout`` published, or its tokens revoked).
CLOSE_FORCED_LOGOUT = 4001

FORCE_LOGOUT_CHANNEL = "mobile.force.logout"
FORCE_LOGOUT_EVENT = "MOBILE_USER_FORCE_LOGOUT_EVENT"
SETTINGS_CHANNEL = "settings"

#: The one message of a rejected handshake with a token (the document's).
INVALID_TOKEN = "Invalid or expired token"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def error_shape(status: int, message: str, request_id: str) -> Any:
    """The document's JSON error (HTTP errors and rejected handshakes)."""
    return {"status_code": status, "message": message, "trace_id": request_id, "data": None}


def success_body(message: str, data: Any, request_id: str) -> Any:
    """The same shape for a successful HTTP answer."""
    return {"status_code": 200, "message": message, "trace_id": request_id, "data": data}


def event_frame(event: str, channel: str, data_json: str, at: StreamPosition) -> str:
    """A channel event, rendered once per publish (``data_json`` is already JSON)."""
    return (
        f'{{"event":{_dumps(event)},"channel":{_dumps(channel)},"data":{data_json},'
        f'"offset":{at.offset},"epoch":"{at.epoch}"}}'
    )


def reply(event: str, channel: str | None, data: Any) -> str:
    """A command's answer (``subscribed``, ``unsubscribed``, ``pong``, ``error``)."""
    return _dumps({"event": event, "channel": channel, "data": data})


def error(message: str, channel: str | None = None, code: str = "bad_request") -> str:
    return reply("error", channel, {"code": code, "message": message})


def user_id_value(user_id: str) -> int | str:
    """A user id as the document's examples show it (``mobile_user_id``: a number)."""
    return int(user_id) if user_id.isdigit() and len(user_id) < 19 else user_id


def force_logout_data(user_id: str) -> dict[str, Any]:
    return {"mobile_user_id": user_id_value(user_id), "is_force_logout": True}
