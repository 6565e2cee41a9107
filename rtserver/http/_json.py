"""Reading JSON request bodies with errors that name the problem."""

from __future__ import annotations

import json
from typing import Any, cast

from quart import request

from rtserver.exceptions import InvalidInputError


async def read_json_object() -> dict[str, Any]:
    """The request body as a JSON object, or :class:`InvalidInputError` saying what is wrong.

    The body size was already bounded by ``server.max_body_bytes`` (413 beyond it).
    """
    raw = cast(bytes, await request.get_data(as_text=False))  # as_text=False: bytes
    if not raw:
        raise InvalidInputError("request body must be a JSON object, got an empty body")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError("request body is not valid UTF-8") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"request body is not valid JSON: {exc.msg} at position {exc.pos}"
        ) from None
    except RecursionError:
        raise InvalidInputError("request body is nested too deeply") from None
    if not isinstance(value, dict):
        raise InvalidInputError(f"request body must be a JSON object, got {json_type(value)}")
    return value


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
