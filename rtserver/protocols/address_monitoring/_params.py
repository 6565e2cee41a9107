"""Request parameters shared by the address-monitoring endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rtserver.addresses import chain_family, detect_and_normalize, validate_address
from rtserver.core import Core
from rtserver.exceptions import InvalidInputError
from rtserver.http import get_chain_type, get_core
from rtserver.store.transactions import Viewer

#: Longest transaction hash text accepted (EVM: 66; Solana signatures: 88).
MAX_HASH_LENGTH = 128


def chain_type_param(
    body: Mapping[str, Any],
    name: str = "chain_type",
    *,
    chain_id: int | None = None,
    required: bool = True,
    where: str = "",
    core: Core | None = None,
) -> str | None:
    """A known chain type, lowercased (the spec's services lowercase it too); ``evm``
    with the request's ``chain_id`` names the configured EVM chain of that id.

    ``core`` defaults to the request's (the WebSocket commands, served outside Quart,
    pass theirs).
    """
    chains = (core or get_core()).config.chains
    return get_chain_type(
        body, name, chain_id=chain_id, chains=chains, required=required, where=where
    )


def viewer(core: Core, app_id: str) -> Viewer:
    """Whose view of the stored records a request of ``app_id`` reads (``api.records_visibility``)."""
    return Viewer(app_id, every_chain_record=core.config.api.records_visibility == "global")


def address_param(chain_type: str | None, value: Any, key: str) -> str:
    """A validated address in normal form; without a chain type, any known format."""
    if chain_type is None:
        if not isinstance(value, str) or not value.strip():
            raise InvalidInputError(f"{key} must be a non-empty string", field=key)
        normalized = detect_and_normalize(value)
        if normalized is None:
            raise InvalidInputError(f"{key} is not an address of any known chain", field=key)
        return normalized
    try:
        return validate_address(chain_type, value)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{key}: {exc}", field=key) from None


def tx_hash_param(chain_type: str, value: Any, key: str) -> str:
    """A transaction hash in stored form (EVM: lowercase with ``0x``, prefix optional)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{key} must be a non-empty string", field=key)
    text = value.strip()
    if len(text) > MAX_HASH_LENGTH:
        raise InvalidInputError(f"{key} is longer than {MAX_HASH_LENGTH} characters", field=key)
    if chain_family(chain_type) == "evm":
        digits = text[2:] if text[:2].lower() == "0x" else text
        if len(digits) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise InvalidInputError(f"{key} must be 32 bytes of hex", field=key)
        return "0x" + digits.lower()
    if not text.isalnum():
        raise InvalidInputError(f"{key} must be alphanumeric", field=key)
    return text
