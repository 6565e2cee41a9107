"""ERC-20 metadata (symbol, decimals) fetched from the chain, kept per chain and token.

Plain functions over a connection, like every repository.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

#: Values bound per ``IN (...)`` list.
_CHUNK = 500


def load(
    conn: sqlite3.Connection, chain_type: str, chain_id: int, tokens: Sequence[str]
) -> dict[str, tuple[str | None, int | None]]:
    """``{token: (symbol, decimals)}`` of the ``tokens`` stored (the others left out)."""
    found: dict[str, tuple[str | None, int | None]] = {}
    for start in range(0, len(tokens), _CHUNK):
        chunk = tokens[start : start + _CHUNK]
        rows = conn.execute(
            "SELECT address, symbol, decimals FROM token_metadata WHERE chain_type = ?"
            f" AND chain_id = ? AND address IN ({','.join('?' * len(chunk))})",
            (chain_type, chain_id, *chunk),
        ).fetchall()
        found.update({row[0]: (row[1], row[2]) for row in rows})
    return found


def save(
    conn: sqlite3.Connection,
    chain_type: str,
    chain_id: int,
    fetched: Mapping[str, tuple[str | None, int | None]],
    *,
    now: float,
) -> None:
    """Store (or replace) ``{token: (symbol, decimals)}`` fetched at ``now`` (Unix s)."""
    fetched_at = int(now)
    conn.executemany(
        "INSERT OR REPLACE INTO token_metadata"
        " (chain_type, chain_id, address, symbol, decimals, fetched_at) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (chain_type, chain_id, a, symbol, decimals, fetched_at)
            for a, (symbol, decimals) in fetched.items()
        ],
    )
