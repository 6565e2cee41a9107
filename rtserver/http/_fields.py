"""Reading typed fields out of decoded JSON, with errors that name the field.

JSON has no integer type of its own and Python's ``bool`` is an ``int``: these readers
reject ``true`` where a number is expected and ``1.5`` where an integer is, so a
client's type mistake gets a clear 400 instead of a surprising result. Every integer is
range-checked here, where it is read: one that SQLite cannot bind would otherwise fail
the query it reaches with a 500 (or, in a write job, the whole batch it is in).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rtserver.addresses import chain_family
from rtserver.config import ChainConfig
from rtserver.exceptions import InvalidInputError
from rtserver.http._json import json_type

_MISSING: Any = object()
#: SQLite's INTEGER range: the widest any integer from a client may be.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


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
    """The integer field ``name``; accepts digit strings (query parameters arrive as text).

    Bounded by ``minimum``/``maximum`` and, always, by SQLite's 64-bit INTEGER range.
    """
    key = where + name
    minimum = INT64_MIN if minimum is None else max(minimum, INT64_MIN)
    maximum = INT64_MAX if maximum is None else min(maximum, INT64_MAX)
    value = body.get(name, _MISSING)
    if value is _MISSING or value is None or value == "":
        if required:
            raise InvalidInputError(f"{key} is required", field=key)
        return default
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 20:
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{key} must be an integer, got {json_type(value)}", field=key)
    if not minimum <= value <= maximum:
        # The SQLite bounds are named as such: their digits would say less.
        low = "-2**63" if minimum == INT64_MIN else str(minimum)
        high = "2**63-1" if maximum == INT64_MAX else str(maximum)
        raise InvalidInputError(f"{key} must be between {low} and {high}", field=key)
    return value


def get_chain_id(
    body: Mapping[str, Any], name: str = "chain_id", *, required: bool = True, where: str = ""
) -> int | None:
    """A chain id: a positive integer, wherever an API takes one."""
    return get_int(body, name, required=required, minimum=1, where=where)


def get_chain_type(
    body: Mapping[str, Any],
    name: str = "chain_type",
    *,
    chain_id: int | None = None,
    chains: Iterable[ChainConfig] = (),
    required: bool = True,
    where: str = "",
) -> str | None:
    """A known chain type, lowercased, as the server names it.

    The spec uses ``evm`` for "the EVM chain with this chain id" (its pool example asks
    ``chainType=evm&chainId=1``) while records, pools and watch lists carry the name of
    the configured chain (``ethereum``). So ``evm`` with a ``chain_id`` resolves to the
    configured EVM chain (of ``chains``, the ``[[chains]]`` entries) of that id, and stays
    ``evm`` when none is configured.
    """
    value = get_str(body, name, required=required, max_length=64, where=where)
    if value is None:
        return None
    chain_type = value.lower()
    family = chain_family(chain_type)
    if family is None:
        raise InvalidInputError(f"unknown chain_type {value!r}", field=where + name)
    if chain_type == "evm" and chain_id is not None:
        for chain in chains:
            if chain.chain_id == chain_id and chain_family(chain.chain_type) == family:
                return chain.chain_type
    return chain_type


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
