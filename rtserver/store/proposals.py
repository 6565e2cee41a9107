"""Payment proposals in SQLite (``payment_proposals``, migration 11).

Plain functions over a connection, like every repository. Transitions are conditional
updates (``... WHERE status = 'pending'``): a proposal leaves pending at most once,
whatever runs concurrently, and the caller learns whether its transition happened.
"""

from __future__ import annotations

import sqlite3

from rtserver.exceptions import ConflictError
from rtserver.proposals import AmountMatch, Proposal, ProposalStatus, ProposalTerms

_PENDING = ProposalStatus.PENDING.value
_COLUMNS = (
    "transaction_id, app_id, chain_type, chain_id, token, amount, amount_match,"
    " receiving_address, status, settled_tx_hash, created_at_ms, expires_at_ms, updated_at_ms"
)


def insert(
    conn: sqlite3.Connection, transaction_id: str, app_id: str, terms: ProposalTerms, *, now_ms: int
) -> Proposal:
    """Store a new pending proposal created at ``now_ms``.

    Raises :class:`ConflictError` when a pending proposal already receives at the same
    address on the same chain (a transfer could not tell the two apart).
    """
    taken = conn.execute(
        "SELECT transaction_id FROM payment_proposals WHERE chain_type = ? AND chain_id = ?"
        " AND receiving_address = ? AND status = ?",
        (terms.chain_type, terms.chain_id, terms.receiving_address, _PENDING),
    ).fetchone()
    if taken is not None:
        raise ConflictError(
            f"a pending proposal already receives at {terms.receiving_address} on"
            f" {terms.chain_type}:{terms.chain_id}"
        )
    conn.execute(
        f"INSERT INTO payment_proposals ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            transaction_id,
            app_id,
            terms.chain_type,
            terms.chain_id,
            terms.token,
            str(terms.amount),
            terms.amount_match.value,
            terms.receiving_address,
            _PENDING,
            None,
            now_ms,
            terms.expires_at_ms,
            now_ms,
        ),
    )
    return Proposal(transaction_id, app_id, terms, ProposalStatus.PENDING, None, now_ms, now_ms)


def get(conn: sqlite3.Connection, transaction_id: str) -> Proposal | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM payment_proposals WHERE transaction_id = ?", (transaction_id,)
    ).fetchone()
    return None if row is None else _proposal(row)


def count_pending(conn: sqlite3.Connection, app_id: str) -> int:
    (count,) = conn.execute(
        "SELECT COUNT(*) FROM payment_proposals WHERE app_id = ? AND status = ?",
        (app_id, _PENDING),
    ).fetchone()
    return int(count)


def move(
    conn: sqlite3.Connection,
    transaction_id: str,
    status: ProposalStatus,
    *,
    now_ms: int,
    settled_tx_hash: str | None = None,
) -> Proposal | None:
    """Move a pending proposal to ``status`` (terminal) at ``now_ms``; the proposal as
    it is now, or None when it was not pending (nothing changed)."""
    assert status is not ProposalStatus.PENDING
    cursor = conn.execute(
        "UPDATE payment_proposals SET status = ?, settled_tx_hash = ?, updated_at_ms = ?"
        " WHERE transaction_id = ? AND status = ?",
        (status.value, settled_tx_hash, now_ms, transaction_id, _PENDING),
    )
    if cursor.rowcount != 1:
        return None
    return get(conn, transaction_id)


def due_for_expiry(conn: sqlite3.Connection, now_ms: int, limit: int) -> list[str]:
    """Pending proposals whose expiry time is at or before ``now_ms``, earliest first."""
    rows = conn.execute(
        "SELECT transaction_id FROM payment_proposals WHERE status = ? AND expires_at_ms <= ?"
        " ORDER BY expires_at_ms LIMIT ?",
        (_PENDING, now_ms, limit),
    ).fetchall()
    return [row[0] for row in rows]


def next_expiry_ms(conn: sqlite3.Connection) -> int | None:
    """The earliest expiry time of a pending proposal; None when none is pending."""
    (value,) = conn.execute(
        "SELECT MIN(expires_at_ms) FROM payment_proposals WHERE status = ?", (_PENDING,)
    ).fetchone()
    return None if value is None else int(value)


def pending_addresses(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """``(transaction_id, chain_type, receiving_address)`` of every pending proposal
    (what the watch index needs at start)."""
    rows = conn.execute(
        "SELECT transaction_id, chain_type, receiving_address FROM payment_proposals"
        " WHERE status = ?",
        (_PENDING,),
    ).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


def _proposal(row: sqlite3.Row) -> Proposal:
    terms = ProposalTerms(
        chain_type=row[2],
        chain_id=row[3],
        token=row[4],
        amount=int(row[5]),
        amount_match=AmountMatch(row[6]),
        receiving_address=row[7],
        expires_at_ms=row[11],
    )
    return Proposal(
        transaction_id=row[0],
        app_id=row[1],
        terms=terms,
        status=ProposalStatus(row[8]),
        settled_tx_hash=row[9],
        created_at_ms=row[10],
        updated_at_ms=row[12],
    )
