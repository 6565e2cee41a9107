"""The error envelope of the address-monitoring HTTP API (``/tx/api/v1``).

The spec's success envelopes disagree on the text field's name (``message`` on the
address and helper endpoints, ``msg`` on the transfer queries), and it gives no HTTP
error envelope at all. An error answers the HTTP status in ``code`` and carries the text
under both names, so a client reading either finds it, and the request id (also in the
``X-Request-Id`` header) to quote in a report (docs/address-monitoring.md).
"""

from __future__ import annotations

from typing import Any

PREFIX = "/tx/api/v1"


def error_envelope(status: int, message: str, request_id: str) -> Any:
    return {
        "code": status,
        "message": message,
        "msg": message,
        "data": None,
        "request_id": request_id,
    }
