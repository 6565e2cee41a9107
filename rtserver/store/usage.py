"""Usage counters per app per UTC day (``usage_daily``): the spec's billing statistics.

Plain functions over a connection, like every repository.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable


def add_counts(conn: sqlite3.Connection, counts: Iterable[tuple[str, str, str, int]]) -> None:
    """Add ``(app_id, day, metric, n)`` to the stored counts."""
    conn.executemany(
        "INSERT INTO usage_daily (app_id, day, metric, count) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (app_id, day, metric) DO UPDATE SET count = count + excluded.count",
        list(counts),
    )


def counts_since(conn: sqlite3.Connection, app_id: str, day: str) -> list[tuple[str, str, int]]:
    """``(day, metric, count)`` of the app from ``day`` (``YYYY-MM-DD``) on, newest first."""
    rows = conn.execute(
        "SELECT day, metric, count FROM usage_daily WHERE app_id = ? AND day >= ?"
        " ORDER BY day DESC",
        (app_id, day),
    ).fetchall()
    return [(row[0], row[1], int(row[2])) for row in rows]
