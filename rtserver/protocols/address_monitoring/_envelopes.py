"""Success envelopes: the spec's endpoints disagree, and clients depend on each quirk."""

from __future__ import annotations

from typing import Any

from quart import Response

from rtserver.http import json_response


def ok(data: Any) -> Response:
    """Address management, pools, WebSocket helpers: ``{"code":0,"message":"ok"}``."""
    return json_response({"code": 0, "message": "ok", "data": data})


def list_success(data: Any) -> Response:
    """``/transfers/query``, ``/multi-chain`` and ``/details``: ``code: 1`` and ``msg``."""
    return json_response({"code": 1, "msg": "success", "data": data})


def detail_success(data: Any) -> Response:
    """``GET /transfers/detail`` (V2): ``code: 0`` and ``msg``."""
    return json_response({"code": 0, "msg": "success", "data": data})
