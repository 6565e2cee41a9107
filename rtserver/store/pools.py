"""DEX pools and their recent trades (a bounded FIFO per pool, oldest dropped first).

Trades are kept as served: each row holds the JSON text its caller rendered (the pool
API's naming), read back as it is.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from rtserver.exceptions import NotFoundError
from rtserver.records import TransactionRecord


@dataclass(frozen=True)
class Pool:
    chain_type: str
    chain_id: int
    address: str
    enabled: bool
    created_at: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def add_pool(
    conn: sqlite3.Connection, chain_type: str, chain_id: int, address: str, *, now: float
) -> Pool:
    """Register (or re-enable) a pool at ``now`` (Unix seconds); idempotent."""
    conn.execute(
        "INSERT INTO pools (chain_type, chain_id, address, enabled, created_at)"
        " VALUES (?, ?, ?, 1, ?) ON CONFLICT DO UPDATE SET enabled = 1",
        (chain_type, chain_id, address, int(now)),
    )
    return get_pool(conn, chain_type, chain_id, address)


def set_enabled(
    conn: sqlite3.Connection, chain_type: str, chain_id: int, address: str, enabled: bool
) -> Pool:
    get_pool(conn, chain_type, chain_id, address)
    conn.execute(
        "UPDATE pools SET enabled = ? WHERE chain_type = ? AND chain_id = ? AND address = ?",
        (int(enabled), chain_type, chain_id, address),
    )
    return get_pool(conn, chain_type, chain_id, address)


def remove_pool(conn: sqlite3.Connection, chain_type: str, chain_id: int, address: str) -> None:
    """Forget a pool and its trades."""
    get_pool(conn, chain_type, chain_id, address)
    key = (chain_type, chain_id, address)
    conn.execute("DELETE FROM pools WHERE chain_type = ? AND chain_id = ? AND address = ?", key)
    conn.execute("DELETE FROM pool_trades WHERE chain_type = ? AND chain_id = ? AND pool = ?", key)


def get_pool(conn: sqlite3.Connection, chain_type: str, chain_id: int, address: str) -> Pool:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM pools WHERE chain_type = ? AND chain_id = ? AND address = ?",
        (chain_type, chain_id, address),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no pool {address} on {chain_type}:{chain_id}")
    return _pool(row)


def list_pools(conn: sqlite3.Connection, *, enabled_only: bool = False) -> list[Pool]:
    sql = f"SELECT {_COLUMNS} FROM pools"
    if enabled_only:
        sql += " WHERE enabled = 1"
    return [_pool(row) for row in conn.execute(sql + " ORDER BY created_at, address")]


def record_trade(
    conn: sqlite3.Connection, pool: str, record: TransactionRecord, item: str, keep: int
) -> None:
    """Keep ``record`` as the pool's newest trade, stored as ``item`` (its rendered JSON
    text); a trade already kept is updated in place.

    A record a reorg removed is dropped from the pool instead (``item`` unused): recent
    trades are trades that happened. At most ``keep`` trades stay per pool.
    """
    key = (record.chain_type, record.chain_id, pool)
    if record.removed:
        conn.execute(
            "DELETE FROM pool_trades WHERE chain_type = ? AND chain_id = ? AND pool = ?"
            " AND tx_hash = ?",
            (*key, record.tx_hash),
        )
        return
    conn.execute(
        "INSERT INTO pool_trades (chain_type, chain_id, pool, tx_hash, result)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET result = excluded.result",
        (*key, record.tx_hash, item),
    )
    conn.execute(
        "DELETE FROM pool_trades WHERE chain_type = ? AND chain_id = ? AND pool = ? AND seq <= ("
        " SELECT seq FROM pool_trades WHERE chain_type = ? AND chain_id = ? AND pool = ?"
        " ORDER BY seq DESC LIMIT 1 OFFSET ?)",
        (*key, *key, keep),
    )


def recent_trades(
    conn: sqlite3.Connection, chain_type: str, chain_id: int, pool: str, limit: int
) -> list[dict[str, Any]] | None:
    """The pool's newest ``limit`` trades, newest first; None for an unknown pool."""
    try:
        get_pool(conn, chain_type, chain_id, pool)
    except NotFoundError:
        return None
    rows = conn.execute(
        "SELECT result FROM pool_trades WHERE chain_type = ? AND chain_id = ? AND pool = ?"
        " ORDER BY seq DESC LIMIT ?",
        (chain_type, chain_id, pool, limit),
    )
    return [json.loads(row[0]) for row in rows]


_COLUMNS = "chain_type, chain_id, address, enabled, created_at"


def _pool(row: sqlite3.Row) -> Pool:
    return Pool(row[0], row[1], row[2], bool(row[3]), row[4])
