"""Reading typed fields out of decoded JSON, with errors that name the field.

JSON has no integer type of its own and Python's ``bool`` is an ``int``: these readers
reject ``true`` where a number is expected and ``1.5`` where an integer is, so a
client's type mistake gets a clear 400 instead of a surprising result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rtserver.exceptions import InvalidInputError
from rtserver.http._json import json_type

_MISSING: Any = object()


def get_str(
    body: Mapping[str, Any],
    name: str,
    *,
    required: bool = True,
    default: str | None = None,
    max_length: int = 256,
    where: str = "",
) -> str | None:
    """The string field ``name`` (stripped); ``default`` when absent or null and not required."""
    key = where + name
    value = body.get(name, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise InvalidInputError(f"{key} is required", field=key)
        return default
    if not isinstance(value, str):
        raise InvalidInputError(f"{key} must be a string, got {json_type(value)}", field=key)
    if len(value) > max_length:
        raise InvalidInputError(f"{key} must be at most {max_length} characters", field=key)
    return value.strip()


def get_int(
    body: Mapping[str, Any],
    name: str,
    *,
    required: bool = True,
    default: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
    where: str = "",
) -> int | None:
    """The integer field ``name``; accepts digit strings (query parameters arrive as text)."""
    key = where + name
    value = body.get(name, _MISSING)
    if value is _MISSING or value is None or value == "":
        if required:
            raise InvalidInputError(f"{key} is required", field=key)
        return default
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 20:
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{key} must be an integer, got {json_type(value)}", field=key)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if minimum is not None and maximum is not None:
            raise InvalidInputError(f"{key} must be between {minimum} and {maximum}", field=key)
        if minimum is not None:
            raise InvalidInputError(f"{key} must be at least {minimum}", field=key)
        raise InvalidInputError(f"{key} must be at most {maximum}", field=key)
    return value


def get_list(
    body: Mapping[str, Any],
    name: str,
    *,
    required: bool = True,
    min_items: int = 0,
    max_items: int,
    where: str = "",
) -> list[Any]:
    """The array field ``name`` with a bounded number of items; ``[]`` when absent."""
    key = where + name
    value = body.get(name, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise InvalidInputError(f"{key} is required", field=key)
        return []
    if not isinstance(value, list):
        raise InvalidInputError(f"{key} must be an array, got {json_type(value)}", field=key)
    if len(value) < min_items:
        raise InvalidInputError(
            f"{key} must have at least {min_items} item{'s' if min_items > 1 else ''}", field=key
        )
    if len(value) > max_items:
        raise InvalidInputError(f"{key} must have at most {max_items} items", field=key)
    return value


def get_object(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInputError(f"{key} must be an object, got {json_type(value)}", field=key)
    return value
