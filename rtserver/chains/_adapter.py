"""What the chain-agnostic watcher needs from a chain family (EVM first, UTXO and Solana later).

An adapter turns a node's blocks into normalized :class:`TransactionRecord` objects; the
watcher (:mod:`rtserver.chains._watcher`) does everything else: head following,
checkpoints, reorg walk-back, matching, storage and hand-off. Adapters raise
:class:`rtserver.exceptions.ChainError` for anything the node could not answer; the
watcher then retries the same blocks, so an adapter must never return a partial block.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rtserver.records import TransactionRecord

#: Decides which records a block keeps (those someone watches); called on the event loop.
RecordFilter = Callable[[TransactionRecord], bool]


@dataclass(frozen=True)
class BlockHeader:
    number: int
    hash: str
    parent_hash: str
    timestamp: int


@dataclass(frozen=True)
class Block:
    """One canonical block as the node has it now.

    ``records`` holds the records the caller's filter kept (complete: enriched with token
    metadata, traces, receipts); ``tx_hashes`` holds *every* transaction of the block, so
    a reorg can tell a transaction that moved to another block from one that vanished.
    """

    number: int
    hash: str
    parent_hash: str
    timestamp: int
    records: tuple[TransactionRecord, ...] = ()
    tx_hashes: frozenset[str] = field(default_factory=frozenset)


class ChainAdapter(Protocol):
    chain_type: str
    chain_id: int

    async def check(self) -> None:
        """Verify that the node serves the configured chain; raise ChainError with a clear reason."""
        ...

    async def head_number(self) -> int:
        """The node's latest block number."""
        ...

    async def block_header(self, number: int) -> BlockHeader | None:
        """The canonical header at ``number``, None when the node has no such block."""
        ...

    async def fetch_blocks(self, numbers: Sequence[int], keep: RecordFilter) -> list[Block]:
        """Canonical blocks ``numbers`` (ascending, contiguous), each complete, or ChainError."""
        ...

    async def fetch_transaction(self, tx_hash: str) -> TransactionRecord | None:
        """One transaction as the chain has it now (None for an unknown hash)."""
        ...

    async def listen_heads(self, wake: Callable[[int | None], None]) -> None:
        """Call ``wake(number)`` as soon as the node announces a new head; runs until cancelled.

        Adapters without a push channel just sleep forever: the watcher polls anyway.
        """
        ...

    def failing_for(self) -> float | None:
        """Seconds the node has been failing every call (None: it answers)."""
        ...

    async def aclose(self) -> None: ...
