"""Apps' persistent watch lists (``watched_addresses``), addresses in normal form.

Each entry remembers where it began (``since_tx_id``: the last record id then), because
an app reads an address's stored records only from when it watched it: the records
before exist because someone else watched the address, and must not tell it so.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable


def add_addresses(
    conn: sqlite3.Connection,
    app_id: str,
    chain_type: str,
    addresses: Iterable[str],
    *,
    now: float,
) -> int:
    """Add normal-form ``addresses`` at ``now`` (Unix seconds); adding one twice is
    harmless (it keeps its start). Returns rows added."""
    created_at = int(now)
    (since,) = conn.execute(
        "SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'transactions'"
    ).fetchone()
    cursor = conn.executemany(
        "INSERT OR IGNORE INTO watched_addresses"
        " (app_id, chain_type, address, created_at, since_tx_id) VALUES (?, ?, ?, ?, ?)",
        [(app_id, chain_type, a, created_at, since) for a in addresses],
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


def watch_starts(
    conn: sqlite3.Connection, app_id: str, address: str, chain_type: str | None = None
) -> list[tuple[str, int]]:
    """``(chain_type, since_tx_id)`` of each chain on which ``app_id`` watches the
    normal-form ``address`` (on ``chain_type`` only, when given); 0 = from the start."""
    sql = (
        "SELECT chain_type, COALESCE(since_tx_id, 0) FROM watched_addresses"
        " WHERE app_id = ? AND address = ?"
    )
    params: list[object] = [app_id, address]
    if chain_type is not None:
        sql += " AND chain_type = ?"
        params.append(chain_type)
    return [(row[0], row[1]) for row in conn.execute(sql, params)]


def watched_before(
    conn: sqlite3.Connection,
    app_id: str,
    chain_type: str,
    addresses: Collection[str],
    record_id: int,
) -> bool:
    """Whether ``app_id`` watched one of the normal-form ``addresses`` before the record
    ``record_id`` was stored (so that the watcher matched it for the app)."""
    if not addresses:
        return False
    placeholders = ",".join("?" * len(addresses))
    row = conn.execute(
        "SELECT 1 FROM watched_addresses WHERE app_id = ? AND chain_type = ?"
        f" AND address IN ({placeholders}) AND COALESCE(since_tx_id, 0) < ? LIMIT 1",
        (app_id, chain_type, *addresses, record_id),
    ).fetchone()
    return row is not None
