"""Balances of EVM accounts: the native coin and a list of ERC-20 tokens, read in batches.

One JSON-RPC batch reads every asked account's balances at one block
(``eth_getBalance`` + ``eth_call balanceOf`` per token), through the chain's
:class:`~rtserver.chains.evm._rpc.RpcClient` (retries, failover). Guarantees: a read
returns every balance asked at that block or raises :class:`ChainError`, never a partial
answer; a token whose ``balanceOf`` reverts or that has no code reads as 0 (the token's
answer, not the node's trouble).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rtserver.chains.evm._rpc import RpcClient, RpcReply, hex_int
from rtserver.exceptions import ChainError

#: ``balanceOf(address)``.
BALANCE_OF_SELECTOR = "0x70a08231"


@dataclass(frozen=True, slots=True)
class Asset:
    """What a balance is of: an ERC-20 contract, or the native coin (``token`` None)."""

    token: str | None
    symbol: str
    decimals: int


@dataclass(frozen=True, slots=True)
class Balances:
    """An account's balances at a block, in base units, in the reader's asset order."""

    block: int
    amounts: tuple[int, ...]


class BalanceReader:
    """Reads the balances of ``assets`` for many accounts of one chain at once."""

    def __init__(self, rpc: RpcClient, assets: Sequence[Asset]) -> None:
        self.rpc = rpc
        self.assets = tuple(assets)

    async def head(self) -> int:
        """The node's latest block number."""
        return hex_int(await self.rpc.call("eth_blockNumber", []))

    async def read(self, accounts: Sequence[str], block: int) -> dict[str, Balances]:
        """Every asset's balance of each account (lowercase) at ``block``, in one batch."""
        tag = hex(block)
        calls: list[tuple[str, list[Any]]] = []
        for account in accounts:
            for asset in self.assets:
                if asset.token is None:
                    calls.append(("eth_getBalance", [account, tag]))
                else:
                    data = BALANCE_OF_SELECTOR + account.removeprefix("0x").rjust(64, "0")
                    calls.append(("eth_call", [{"to": asset.token, "data": data}, tag]))
        replies = await self.rpc.batch(calls)
        found: dict[str, Balances] = {}
        per = len(self.assets)
        for index, account in enumerate(accounts):
            own = replies[index * per : (index + 1) * per]
            found[account] = Balances(
                block,
                tuple(_amount(asset, reply) for asset, reply in zip(self.assets, own, strict=True)),
            )
        return found


def _amount(asset: Asset, reply: RpcReply) -> int:
    if reply.error is not None:
        message = str(reply.error.get("message", "")).lower()
        if asset.token is not None and (reply.error.get("code") == 3 or "revert" in message):
            return 0  # the token's answer: it does not say this account holds any
        raise ChainError(f"balance of {asset.symbol}: node error {reply.error}")
    if asset.token is None:
        return hex_int(reply.result)
    result = reply.result
    if not isinstance(result, str) or not result.startswith("0x"):
        raise ChainError(f"balanceOf of {asset.symbol}: not hex data: {str(result)[:80]}")
    digits = result[2:66]
    if not digits:  # no code at the address: nothing to hold
        return 0
    try:
        return int(digits, 16)
    except ValueError:
        raise ChainError(f"balanceOf of {asset.symbol}: not hex data") from None
