"""Operational endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import trio
from quart import Blueprint, Response

from rtserver.http._app import get_core, json_response
from rtserver.metrics import CONTENT_TYPE

blueprint = Blueprint("ops", __name__)

#: Seconds one readiness check may take before it counts as failing.
READINESS_TIMEOUT = 5.0


@blueprint.get("/healthz")
async def healthz() -> Response:
    """200 while the process serves requests; says nothing about its dependencies."""
    return json_response({"status": "ok"})


@blueprint.get("/readyz")
async def readyz() -> Response:
    """200 when every readiness check passes, 503 with the failing reasons otherwise."""
    core = get_core()
    failures: dict[str, str] = {}
    for name, check in core.readiness_checks.items():
        with trio.move_on_after(READINESS_TIMEOUT) as scope:
            reason = await check()
        if scope.cancelled_caught:
            reason = f"check did not answer within {READINESS_TIMEOUT:.0f} s"
        if reason is not None:
            failures[name] = reason
    if core.connections.closing.is_set():
        failures["server"] = "shutting down"
    if failures:
        return json_response({"status": "unavailable", "checks": failures}, status=503)
    return json_response({"status": "ready", "checks": dict.fromkeys(core.readiness_checks, "ok")})


@blueprint.get("/metrics")
async def metrics() -> Response:
    return Response(get_core().metrics.render(), content_type=CONTENT_TYPE)
