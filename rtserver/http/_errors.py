"""Error bodies: every HTTP error is JSON, in the shape of the API its path belongs to.

A protocol front-end registers its own shape for its path prefix (for example
``/tx/api/v1`` answers ``{"code": …, "message": …}``); everything else gets rtserver's
own shape ``{"error": {"status": …, "message": …, "request_id": …}}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Builds the JSON body for (HTTP status, message, request id).
ErrorShape = Callable[[int, str, str], Any]


def default_shape(status: int, message: str, request_id: str) -> Any:
    return {"error": {"status": status, "message": message, "request_id": request_id}}


class ErrorShapes:
    def __init__(self) -> None:
        self._by_prefix: list[tuple[str, ErrorShape]] = []

    def register(self, prefix: str, shape: ErrorShape) -> None:
        self._by_prefix.append((prefix.rstrip("/"), shape))
        # Longest prefix first, so nested APIs can override their parent's shape.
        self._by_prefix.sort(key=lambda item: len(item[0]), reverse=True)

    def for_path(self, path: str) -> ErrorShape:
        for prefix, shape in self._by_prefix:
            if path == prefix or path.startswith(prefix + "/"):
                return shape
        return default_shape
