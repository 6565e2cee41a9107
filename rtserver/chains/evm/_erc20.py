"""ERC-20 token metadata (symbol, decimals): read once by ``eth_call``, cached in SQLite.

Tokens differ in what they return: a string (the standard), a ``bytes32`` (old tokens
such as MKR), or nothing at all (the call reverts or the contract has no such function).
Each field is decoded on its own; what cannot be read is stored as None, so a token is
asked once, not on every transfer. Only a transport failure (the node could not answer)
leaves the token uncached, so it is asked again next time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode

from rtserver.chains.evm._rpc import RpcClient, RpcReply
from rtserver.clock import Clock
from rtserver.exceptions import ChainError
from rtserver.store import Store, token_metadata

SYMBOL_SELECTOR = "0x95d89b41"
DECIMALS_SELECTOR = "0x313ce567"
#: Longest symbol kept; longer strings are truncated (a hostile token cannot bloat records).
MAX_SYMBOL_CHARS = 64


@dataclass(frozen=True)
class TokenMetadata:
    symbol: str | None
    decimals: int | None


class TokenMetadataCache:
    """Symbol and decimals per token contract, in memory and in ``token_metadata``."""

    def __init__(
        self, rpc: RpcClient, store: Store | None, chain_type: str, chain_id: int, clock: Clock
    ) -> None:
        self._rpc = rpc
        self._clock = clock
        self._store = store
        self._chain_type = chain_type
        self._chain_id = chain_id
        self._memory: dict[str, TokenMetadata] = {}

    async def get_many(self, tokens: Iterable[str]) -> dict[str, TokenMetadata]:
        """Metadata of every lowercase address in ``tokens`` (ChainError if the node fails)."""
        wanted = set(tokens)
        missing = sorted(wanted - self._memory.keys())
        if missing and self._store is not None:
            rows = await self._store.read(
                token_metadata.load, self._chain_type, self._chain_id, missing
            )
            stored = {token: TokenMetadata(*row) for token, row in rows.items()}
            self._memory.update(stored)
            missing = [t for t in missing if t not in stored]
        if missing:
            calls: list[tuple[str, list[Any]]] = []
            for token in missing:
                calls.append(("eth_call", [{"to": token, "data": SYMBOL_SELECTOR}, "latest"]))
                calls.append(("eth_call", [{"to": token, "data": DECIMALS_SELECTOR}, "latest"]))
            replies = await self._rpc.batch(calls)
            for reply in replies:
                if not _is_answer(reply):
                    # Not the token's answer but the node's trouble: ask again later.
                    raise ChainError(f"token metadata: node error {reply.error}")
            fetched: dict[str, TokenMetadata] = {}
            for index, token in enumerate(missing):
                fetched[token] = TokenMetadata(
                    decode_symbol(replies[2 * index]), decode_decimals(replies[2 * index + 1])
                )
            self._memory.update(fetched)
            if self._store is not None:
                rows = {t: (m.symbol, m.decimals) for t, m in fetched.items()}
                await self._store.write(
                    lambda conn: token_metadata.save(
                        conn, self._chain_type, self._chain_id, rows, now=self._clock.time()
                    )
                )
        return {t: self._memory[t] for t in wanted}


def decode_symbol(reply: RpcReply) -> str | None:
    """A string or bytes32 symbol; None for a revert, empty or undecodable answer."""
    raw = _bytes(reply)
    if not raw:
        return None
    text: str | None = None
    if len(raw) >= 64:
        try:
            (text,) = decode(["string"], raw)
        except Exception:
            text = None
    if text is None and len(raw) == 32:
        text = raw.rstrip(b"\x00").decode("utf-8", errors="replace")
    if text is None:
        return None
    text = text.replace("\x00", "").strip()
    return text[:MAX_SYMBOL_CHARS] or None


def decode_decimals(reply: RpcReply) -> int | None:
    raw = _bytes(reply)
    if len(raw) < 32:
        return None
    value = int.from_bytes(raw[:32], "big")
    # uint8 by the standard; anything beyond is a broken token, not a precision.
    return value if value <= 255 else None


def _is_answer(reply: RpcReply) -> bool:
    """Whether ``reply`` says something about the token (a result, or a revert)."""
    if reply.error is None:
        return True
    message = str(reply.error.get("message", "")).lower()
    return reply.error.get("code") == 3 or "revert" in message or "invalid opcode" in message


def _bytes(reply: RpcReply) -> bytes:
    if reply.error is not None or not isinstance(reply.result, str):
        return b""
    try:
        return bytes.fromhex(reply.result.removeprefix("0x"))
    except ValueError:
        return b""
