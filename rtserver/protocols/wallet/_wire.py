"""The wallet socket's wire (../shared/spec/wallet-realtime-ws.txt): envelopes, namings.

Every server message is ``{"type", "data", "timestamp"}`` with an ISO 8601 UTC timestamp
in milliseconds (``2025-08-01T07:36:04.083Z``). Addresses go out EIP-55 checksummed, as
the document's examples show them; amounts as the document says: human decimal strings
in ``balance_data`` and transactions (``"123.45"``), base units in ``balance_update``.
Extensions (docs/wallet.md): ``balance_update`` carries ``token``, ``symbol`` and
``decimals``; ``user_data``'s ``iban`` carries ``state``; ``error`` answers to client
messages name a ``context`` of their own (``message``, ``auth``, ``transactions``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from eth_hash.auto import keccak

from rtserver.balances import Asset, Balances
from rtserver.records import TransactionRecord
from rtserver.store.wallets import Safe, WalletUser

#: The endpoint.
WS_PATH = "/ws"
#: Prefix of the wire formats of stream messages: ``wallet:<chain_id>`` (a wallet socket
#: is on one chain, and a user's event names that chain's Safe).
FORMAT_PREFIX = "wallet:"
#: The document's close code for a bad JWT (and any refused authentication).
CLOSE_POLICY = 1008
#: What ``balance_data`` names the native coin's "token" (no contract).
NATIVE_TOKEN = "0x0000000000000000000000000000000000000000"

AUTH_CONTEXT = "auth_process"
EXPIRED = "JWT token expired, please refresh your token"
INVALID_TOKEN = "Invalid JWT token"
TOKEN_REQUIRED = "Authentication token is required"
AUTH_TIMEOUT = "Authentication timeout: no auth message received"
CONNECTED = "Connected to real-time updates"


def wire_format(chain_id: int) -> str:
    return f"{FORMAT_PREFIX}{chain_id}"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def iso(ms: int) -> str:
    """Unix milliseconds as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def message(kind: str, data: Any, now_ms: int) -> str:
    """One server message (every type has this envelope)."""
    return _dumps({"type": kind, "data": data, "timestamp": iso(now_ms)})


def error(text: str, context: str, now_ms: int) -> str:
    return message("error", {"message": text, "context": context}, now_ms)


def auth_error(text: str, now_ms: int) -> str:
    return message("auth_error", {"message": text, "context": AUTH_CONTEXT}, now_ms)


def checksum(address: str | None) -> str | None:
    """The EIP-55 spelling of an EVM address (None stays None)."""
    if address is None:
        return None
    plain = address.lower().removeprefix("0x")
    digest = keccak(plain.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if c.isalpha() and int(digest[i], 16) >= 8 else c for i, c in enumerate(plain)
    )


def human(amount: int, decimals: int) -> str:
    """Base units as a decimal string in token units: ``100.0``, ``123.45``."""
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**decimals)
    digits = str(fraction).rjust(decimals, "0").rstrip("0") if decimals else ""
    return f"{sign}{whole}.{digits or '0'}"


# -- data of the messages ------------------------------------------------------------


def balance_data(
    safe: Safe, assets: Sequence[Asset], balances: Balances, request_id: Any = None
) -> dict[str, Any]:
    rows = [
        {
            "token": checksum(asset.token) or NATIVE_TOKEN,
            "symbol": asset.symbol,
            "balance": human(amount, asset.decimals),
            "decimals": asset.decimals,
        }
        for asset, amount in zip(assets, balances.amounts, strict=True)
    ]
    data: dict[str, Any] = {"safeAddress": checksum(safe.address), "balance": {"balances": rows}}
    if request_id is not None:
        data["requestId"] = request_id
    return data


def balance_update(safe_address: str, asset: Asset, amount: int, now_ms: int) -> dict[str, Any]:
    return {
        "address": checksum(safe_address),
        "balance": str(amount),
        "updated_at": iso(now_ms),
        "token": checksum(asset.token) or NATIVE_TOKEN,
        "symbol": asset.symbol,
        "decimals": asset.decimals,
    }


def transaction_data(
    safe: Safe, items: list[dict[str, Any]], request_id: Any = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "safeAddress": checksum(safe.address),
        "transactions": {"data": items},
    }
    if request_id is not None:
        data["requestId"] = request_id
    return data


def chainid_data(default_chain_id: int, chain_ids: Sequence[int]) -> dict[str, Any]:
    return {"defaultChainId": default_chain_id, "supportedChainIds": list(chain_ids)}


def recovery_data(safe: Safe, now_ms: int) -> dict[str, Any]:
    r = safe.recovery
    after = r.execute_after_ms
    return {
        "safeAddress": checksum(safe.address),
        "recoveryEnabled": r.enabled,
        "recoveryAddress": checksum(r.address),
        "delay": r.delay,
        "pendingRecovery": r.pending,
        "canExecute": r.pending and after is not None and now_ms >= after,
        "executeAfter": None if after is None else iso(after),
    }


def user_data(user: WalletUser) -> dict[str, Any]:
    signers: dict[str, list[dict[str, Any]]] = {}
    for safe in user.safes:
        iban = safe.iban
        signers.setdefault(safe.signer_id, []).append(
            {
                "address": checksum(safe.address),
                "threshold": safe.threshold,
                "iban": None
                if iban.iban is None
                else {
                    "chainId": safe.chain_id,
                    "iban": iban.iban,
                    "bic": iban.bic,
                    "state": iban.state,
                },
            }
        )
    return {
        "id": user.user.user_id,
        "ky": user.kyc_state,
        "signers": [{"id": signer, "safes": safes} for signer, safes in signers.items()],
    }


def kyc_updated(safe: Safe, previous: str | None, new: str, now_ms: int) -> dict[str, Any]:
    return {
        "safeAddress": checksum(safe.address),
        "previousKyc": previous,
        "newKyc": new,
        "updatedAt": iso(now_ms),
    }


def iban_updated(safe: Safe, previous_state: str | None, now_ms: int) -> dict[str, Any]:
    return {
        "safeAddress": checksum(safe.address),
        "iban": safe.iban.iban,
        "previousState": previous_state,
        "newState": safe.iban.state,
        "updatedAt": iso(now_ms),
    }


# -- transactions --------------------------------------------------------------------


def transfers(
    record: TransactionRecord, safe: str, native: Asset, tokens: Mapping[str, Asset]
) -> list[dict[str, Any]]:
    """The wallet's transactions in ``record`` seen from ``safe`` (lowercase): the native
    value it sent or received (the transaction's own and internal calls) and the
    transfers of the listed tokens; nothing of a failed transaction or of other tokens."""
    if record.tx_status == "failed":
        return []
    items: list[dict[str, Any]] = []
    moves: list[tuple[str | None, str | None, str | None]] = [
        (record.sender, record.receiver, record.amount)
    ]
    moves.extend((i.from_address, i.to_address, i.amount) for i in record.internal_transactions)
    for sender, receiver, amount in moves:
        value = _int(amount)
        if value > 0 and safe in (sender, receiver):
            items.append(_item(record, sender, receiver, None, native, value, safe))
    for t in record.token_transfers:
        asset = tokens.get(t.token_contract_address or "")
        if asset is not None and safe in (t.from_address, t.to_address):
            items.append(
                _item(
                    record, t.from_address, t.to_address, asset.token, asset, _int(t.amount), safe
                )
            )
    return items


def _item(
    record: TransactionRecord,
    sender: str | None,
    receiver: str | None,
    token: str | None,
    asset: Asset,
    value: int,
    safe: str,
) -> dict[str, Any]:
    return {
        "hash": record.tx_hash,
        "blockNumber": record.height,
        "timestamp": None if record.tx_time is None else iso(record.tx_time * 1000),
        "from": checksum(sender),
        "to": checksum(receiver),
        "tokenAddress": checksum(token),
        "tokenType": "NATIVE" if token is None else "ERC20",
        "tokenSymbol": asset.symbol,
        "value": human(value, asset.decimals),
        "direction": "IN" if receiver == safe and sender != safe else "OUT",
    }


def _int(amount: str | None) -> int:
    try:
        return int(amount or 0)
    except ValueError:
        return 0
