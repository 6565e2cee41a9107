"""Apps' persistent watch lists (``watched_addresses``), addresses in normal form."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable


def add_addresses(
    conn: sqlite3.Connection, app_id: str, chain_type: str, addresses: Iterable[str]
) -> int:
    """Add normal-form ``addresses``; adding one twice is harmless. Returns rows added."""
    now = int(time.time())
    cursor = conn.executemany(
        "INSERT OR IGNORE INTO watched_addresses (app_id, chain_type, address, created_at)"
        " VALUES (?, ?, ?, ?)",
        [(app_id, chain_type, a, now) for a in addresses],
    )
    return cursor.rowcount


def remove_addresses(
    conn: sqlite3.Connection, app_id: str, chain_type: str, addresses: Iterable[str]
) -> int:
    cursor = conn.executemany(
        "DELETE FROM watched_addresses WHERE app_id = ? AND chain_type = ? AND address = ?",
        [(app_id, chain_type, a) for a in addresses],
    )
    return cursor.rowcount


def all_watched(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """Every ``(app_id, chain_type, address)`` of active apps (to load the index)."""
    rows = conn.execute(
        "SELECT w.app_id, w.chain_type, w.address FROM watched_addresses w"
        " JOIN apps a ON a.app_id = w.app_id WHERE a.revoked_at IS NULL"
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def is_watched(
    conn: sqlite3.Connection, chain_type: str, address: str, app_id: str | None = None
) -> bool:
    """Whether ``app_id`` (any active app when None) watches the normal-form ``address``."""
    if app_id is not None:
        row = conn.execute(
            "SELECT 1 FROM watched_addresses WHERE app_id = ? AND chain_type = ? AND address = ?",
            (app_id, chain_type, address),
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT 1 FROM watched_addresses w JOIN apps a ON a.app_id = w.app_id"
            " WHERE w.chain_type = ? AND w.address = ? AND a.revoked_at IS NULL LIMIT 1",
            (chain_type, address),
        ).fetchone()
    return row is not None
