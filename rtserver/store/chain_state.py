"""A chain watcher's progress: its checkpoint and the recent block hashes for reorgs.

Plain functions over a ``sqlite3.Connection``. The watcher calls the writing ones inside
the same write job that stores a block batch's records, so the checkpoint can never run
ahead of (or behind) the records it covers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from rtserver.records import TransactionRecord
from rtserver.store.transactions import record_columns, record_from_row


@dataclass(frozen=True)
class BlockRef:
    """A processed block: its number, hash and parent's hash."""

    number: int
    hash: str
    parent_hash: str


@dataclass(frozen=True)
class Checkpoint:
    block_number: int
    block_hash: str


def get_checkpoint(conn: sqlite3.Connection, chain_type: str, chain_id: int) -> Checkpoint | None:
    row = conn.execute(
        "SELECT block_number, block_hash FROM chain_checkpoints"
        " WHERE chain_type = ? AND chain_id = ?",
        (chain_type, chain_id),
    ).fetchone()
    return None if row is None else Checkpoint(row[0], row[1])


def save_checkpoint(
    conn: sqlite3.Connection,
    chain_type: str,
    chain_id: int,
    number: int,
    block_hash: str,
    *,
    now: float,
) -> None:
    """Set the last processed block at ``now``, Unix seconds (it may move backwards: a
    reorg shortened the chain)."""
    conn.execute(
        "INSERT INTO chain_checkpoints (chain_type, chain_id, block_number, block_hash, updated_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (chain_type, chain_id) DO UPDATE SET"
        " block_number = excluded.block_number, block_hash = excluded.block_hash,"
        " updated_at = excluded.updated_at",
        (chain_type, chain_id, number, block_hash, int(now)),
    )


def recent_blocks(conn: sqlite3.Connection, chain_type: str, chain_id: int) -> list[BlockRef]:
    """The kept block hashes, oldest first."""
    rows = conn.execute(
        "SELECT number, hash, parent_hash FROM chain_blocks"
        " WHERE chain_type = ? AND chain_id = ? ORDER BY number",
        (chain_type, chain_id),
    ).fetchall()
    return [BlockRef(*row) for row in rows]


def save_blocks(
    conn: sqlite3.Connection,
    chain_type: str,
    chain_id: int,
    blocks: Iterable[BlockRef],
    *,
    keep: int,
) -> None:
    """Record processed blocks (replacing any at the same height) and keep the newest ``keep``."""
    top = None
    for block in blocks:
        conn.execute(
            "INSERT OR REPLACE INTO chain_blocks (chain_type, chain_id, number, hash, parent_hash)"
            " VALUES (?, ?, ?, ?, ?)",
            (chain_type, chain_id, block.number, block.hash, block.parent_hash),
        )
        top = block.number if top is None else max(top, block.number)
    if top is not None:
        conn.execute(
            "DELETE FROM chain_blocks WHERE chain_type = ? AND chain_id = ? AND number <= ?",
            (chain_type, chain_id, top - keep),
        )


def delete_blocks_above(
    conn: sqlite3.Connection, chain_type: str, chain_id: int, number: int
) -> None:
    """Forget the hashes of blocks above ``number`` (a reorg orphaned them)."""
    conn.execute(
        "DELETE FROM chain_blocks WHERE chain_type = ? AND chain_id = ? AND number > ?",
        (chain_type, chain_id, number),
    )


def live_records_between(
    conn: sqlite3.Connection, chain_type: str, chain_id: int, above: int, upto: int
) -> list[TransactionRecord]:
    """Stored, not removed records of blocks ``above < height <= upto`` (orphan candidates)."""
    rows = conn.execute(
        f"SELECT {record_columns()} FROM transactions WHERE chain_type = ? AND chain_id = ?"
        " AND height > ? AND height <= ? AND removed = 0 ORDER BY id",
        (chain_type, chain_id, above, upto),
    ).fetchall()
    return [record_from_row(row) for row in rows]


def mark_handed_off(conn: sqlite3.Connection, tx_id: int) -> bool:
    """Record that the watcher stored and handed off ``tx_id``; True the first time."""
    cursor = conn.execute("INSERT OR IGNORE INTO watcher_records (tx_id) VALUES (?)", (tx_id,))
    return cursor.rowcount == 1
