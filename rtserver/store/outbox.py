"""The delivery outbox: one row per message an app must ACK.

An entry is written in the same transaction as the record it announces (the watcher's
batch, or a replay), so a committed record always has its pending messages, and a
message never exists without its record. It stays pending (``acked_at_ms IS NULL``)
until the app ACKs it; ACKed rows are compacted after the retention time.

Plain functions over a connection (writer thread or CLI), like every repository.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rtserver.store import webhooks


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One message: ``payload`` is its whole frame text, as its protocol renders it.

    ``seq`` is 0 until inserted (and for connection-scoped messages, never stored).
    """

    seq: int
    message_id: str
    app_id: str
    chain_type: str
    chain_id: int
    tx_hash: str
    payload: str
    created_at_ms: int

    @property
    def tx_key(self) -> tuple[str, int, str]:
        return (self.chain_type, self.chain_id, self.tx_hash)


def next_seq(conn: sqlite3.Connection) -> int:
    """The ``seq`` the next entry gets, in the caller's (the single writer's) transaction:
    :func:`insert_entries` takes entries numbered on from it."""
    (last,) = conn.execute(
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'),"
        " (SELECT MAX(seq) FROM outbox), 0)"
    ).fetchone()
    return int(last) + 1


def insert_entries(
    conn: sqlite3.Connection,
    entries: Sequence[OutboxEntry],
    shared_tails: Sequence[str] | None = None,
) -> None:
    """Insert ``entries`` in the caller's transaction, each with its ``seq``: numbered on
    from :func:`next_seq` (so each entry object is made once, already numbered).

    ``shared_tails[i]``: a suffix of entry i's payload that other entries of this call
    may end with too (the push of one transfer to many apps). A tail two or more
    entries share is stored once, in ``outbox_bodies``; every reader gets the whole
    payload back.
    """
    if not entries:
        return
    tails = shared_tails or [""] * len(entries)
    uses = Counter(tails)
    body_ids: dict[str, int] = {}
    rows = []
    for e, tail in zip(entries, tails, strict=True):
        body_id: int | None = None
        head = e.payload
        if tail and uses[tail] > 1:
            body_id = body_ids.get(tail)
            if body_id is None:
                cursor = conn.execute("INSERT INTO outbox_bodies (text) VALUES (?)", (tail,))
                assert cursor.lastrowid is not None
                body_id = body_ids[tail] = cursor.lastrowid
            head = head[: len(head) - len(tail)]
        rows.append(
            (
                e.seq,
                e.message_id,
                e.app_id,
                e.chain_type,
                e.chain_id,
                e.tx_hash,
                head,
                body_id,
                e.created_at_ms,
            )
        )
    conn.executemany(
        "INSERT INTO outbox (seq, message_id, app_id, chain_type, chain_id, tx_hash, payload,"
        " body_id, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def pending_entries(
    conn: sqlite3.Connection, app_id: str, since_ms: int, limit: int
) -> list[OutboxEntry]:
    """The app's unACKed entries created at or after ``since_ms``, oldest first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM {_WITH_BODIES} WHERE o.app_id = ? AND o.acked_at_ms IS NULL"
        " AND o.created_at_ms >= ? ORDER BY o.seq LIMIT ?",
        (app_id, since_ms, limit),
    ).fetchall()
    return [OutboxEntry(*row) for row in rows]


def pending_count(conn: sqlite3.Connection, app_id: str) -> int:
    """How many of the app's messages are not ACKed (any age): ``pendingTxCount``."""
    (count,) = conn.execute(
        "SELECT COUNT(*) FROM outbox WHERE app_id = ? AND acked_at_ms IS NULL", (app_id,)
    ).fetchone()
    return int(count)


def pending_by_app(conn: sqlite3.Connection) -> dict[str, int]:
    """How many messages of each app are not ACKed (apps with none are left out)."""
    rows = conn.execute(
        "SELECT app_id, COUNT(*) FROM outbox WHERE acked_at_ms IS NULL GROUP BY app_id"
    )
    return {app_id: int(count) for app_id, count in rows}


def delivery_backlogs(
    conn: sqlite3.Connection,
) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Each app's unACKed messages and webhook backlog (two grouped counts, one read)."""
    return pending_by_app(conn), webhooks.backlog_by_app(conn)


def owner_of(conn: sqlite3.Connection, message_id: str) -> str | None:
    """The app whose outbox holds ``message_id`` (ACKed or not), None if none does."""
    row = conn.execute("SELECT app_id FROM outbox WHERE message_id = ?", (message_id,)).fetchone()
    return None if row is None else str(row[0])


def get_entry(conn: sqlite3.Connection, app_id: str, message_id: str) -> OutboxEntry | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM {_WITH_BODIES} WHERE o.app_id = ? AND o.message_id = ?",
        (app_id, message_id),
    ).fetchone()
    return None if row is None else OutboxEntry(*row)


def ack(
    conn: sqlite3.Connection,
    app_id: str,
    *,
    message_id: str | None = None,
    chain_type: str | None = None,
    chain_id: int | None = None,
    tx_hash: str | None = None,
    now_ms: int,
) -> list[tuple[str, str]]:
    """ACK by message id, or every entry of the app for a transaction (``chain_id`` optional),
    as of ``now_ms`` (Unix ms).

    Idempotent: ACKing an ACKed or unknown message changes nothing. Returns
    ``(message_id, tx_hash)`` of every entry the ACK designates, ACKed before or now.
    """
    if message_id is not None:
        acked = ack_messages(conn, [(app_id, message_id)], now_ms=now_ms)
        tx = acked.get((app_id, message_id))
        return [] if tx is None else [(message_id, tx)]
    where = "app_id = ? AND chain_type = ? AND tx_hash = ?"
    args: list[object] = [app_id, chain_type, tx_hash]
    if chain_id is not None:
        where += " AND chain_id = ?"
        args.append(chain_id)
    rows = conn.execute(f"SELECT message_id, tx_hash FROM outbox WHERE {where}", args).fetchall()
    conn.execute(
        f"UPDATE outbox SET acked_at_ms = ? WHERE {where} AND acked_at_ms IS NULL",
        [now_ms, *args],
    )
    return [(row[0], row[1]) for row in rows]


def ack_messages(
    conn: sqlite3.Connection, messages: Sequence[tuple[str, str]], *, now_ms: int
) -> dict[tuple[str, str], str]:
    """ACK ``(app_id, message_id)`` pairs as of ``now_ms`` in a few statements (the hot
    path of ``ack``).

    Idempotent like :func:`ack`. Returns ``{(app_id, message_id): tx_hash}`` for the pairs
    that name an entry of that app (ACKed before or now); unknown pairs are left out.
    Two statements and two rows per 500 pairs, whatever their number: a statement per
    ACK made the writer thread the bottleneck when thousands of clients ACK at once, and
    so did a row per ACK (see :func:`_packed_rows`).
    """
    wanted = set(messages)
    found: dict[tuple[str, str], str] = {}
    unacked: list[int] = []
    ids = list({message_id for _, message_id in messages})
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        rows = _packed_rows(
            conn,
            "seq, app_id, message_id, tx_hash, acked_at_ms IS NULL",
            f"FROM outbox WHERE message_id IN ({','.join('?' * len(chunk))})",
            chunk,
        )
        for seq, app_id, message_id, tx_hash, pending in rows:
            if (app_id, message_id) in wanted:  # never another app's message
                found[(app_id, message_id)] = tx_hash
                if pending:
                    unacked.append(seq)
    for start in range(0, len(unacked), _CHUNK):
        seqs = unacked[start : start + _CHUNK]
        conn.execute(
            f"UPDATE outbox SET acked_at_ms = ? WHERE seq IN ({','.join('?' * len(seqs))})",
            [now_ms, *seqs],
        )
    return found


def compact(conn: sqlite3.Connection, acked_before_ms: int, limit: int = 10_000) -> int:
    """Delete up to ``limit`` entries ACKed before ``acked_before_ms``, and the bodies
    no entry uses any more; return how many entries."""
    deleted = conn.execute(
        "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox"
        " WHERE acked_at_ms IS NOT NULL AND acked_at_ms < ? LIMIT ?) RETURNING body_id",
        (acked_before_ms, limit),
    ).fetchall()
    ids = list({body_id for (body_id,) in deleted if body_id is not None})
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        conn.execute(
            f"DELETE FROM outbox_bodies WHERE body_id IN ({','.join('?' * len(chunk))})"
            " AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.body_id = outbox_bodies.body_id)",
            chunk,
        )
    return len(deleted)


#: Values bound per ``IN (...)`` list (SQLite allows 32,766 per statement).
_CHUNK = 500


def _packed_rows(
    conn: sqlite3.Connection, columns: str, rest: str, args: Sequence[object]
) -> list[list[Any]]:
    """The rows of ``SELECT {columns} {rest}``, fetched as one row of JSON.

    Why: Python's sqlite3 releases the GIL around every step, so each row fetched on a
    store thread is a GIL hand-over with the event loop's thread, and while that thread
    is busy each one waits for it to let go. Measured in the reconnect storm, an ACK job
    of 10,000 rows (one per ACK) took 300-1,100 ms of wall time for 115-240 ms of CPU.
    One row of JSON costs one hand-over; the rows come back in no guaranteed order.
    """
    (packed,) = conn.execute(
        f"SELECT json_group_array(json(r)) FROM (SELECT json_array({columns}) AS r {rest})",
        args,
    ).fetchone()
    rows: list[list[Any]] = json.loads(packed)
    return rows


_COLUMNS = (
    "o.seq, o.message_id, o.app_id, o.chain_type, o.chain_id, o.tx_hash,"
    " o.payload || COALESCE(b.text, ''), o.created_at_ms"
)
#: Entries with their shared bodies (see :func:`insert_entries`).
_WITH_BODIES = "outbox o LEFT JOIN outbox_bodies b ON b.body_id = o.body_id"
